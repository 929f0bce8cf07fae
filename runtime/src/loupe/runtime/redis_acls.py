"""Redis ACL users per service: the one table of what each Loupe service may do in Redis.

Only the reviewer gateway and the metrics service use Redis. The gateway owns its working set
(every key under its prefix: tasks, leases, votes, tokens); the metrics service reads the queues
from it and writes nothing. The router, the resolver and the model have no Redis user at all,
so a leaked router or resolver credential cannot read a token grant or rewrite a vote, and a
leaked metrics credential cannot change anything.

Each user is confined to the gateway's keys (``~<prefix>*``, checked by Redis for commands run
inside Lua scripts too) and to the command categories its code needs, never ``@admin`` or
``@dangerous`` (``FLUSHALL``, ``CONFIG``, ``KEYS``, ``DEBUG``...). The password is written as its
SHA-256 (``#<hex>``), so an ACL file or ``redis.conf`` holds no usable secret.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from pydantic import SecretStr

from loupe.runtime.acls import Service, user_name

GATEWAY_REDIS_PREFIX = "loupe:gw:"
"""Where the gateway's working set lives (``LOUPE_GATEWAY_REDIS_PREFIX``; the metrics
service's ``LOUPE_METRICS_GATEWAY_REDIS_PREFIX`` reads the same keys). A deployment with a prefix
of its own grants that prefix instead (``redis_acl_rules(..., prefix=...)``)."""

REDIS_GRANTS: Mapping[Service, tuple[str, ...]] = {
    Service.GATEWAY: (
        "-@all",
        "+@read",
        "+@write",
        "+@scripting",
        "+@transaction",
        "+@connection",
        "-@admin",
        "-@dangerous",
    ),
    Service.METRICS: ("-@all", "+@read", "+@connection", "-@admin", "-@dangerous"),
}
"""Command categories per service; a service missing here gets no Redis user."""


def redis_acl_rules(
    service: Service, password: SecretStr, prefix: str = GATEWAY_REDIS_PREFIX
) -> list[str] | None:
    """The ``ACL SETUSER`` / ``redis.conf`` ``user`` rules of ``service``'s Redis user, or
    None when the service has no business in Redis."""
    grants = REDIS_GRANTS.get(service)
    if grants is None:
        return None
    if not prefix or any(char in prefix for char in "*?[] \t\r\n"):
        raise ValueError(f"a Redis key prefix without glob characters or spaces, not {prefix!r}")
    digest = hashlib.sha256(password.get_secret_value().encode()).hexdigest()
    return ["reset", "on", f"#{digest}", f"~{prefix}*", "resetchannels", *grants]


def redis_acl_config(
    passwords: Mapping[Service, SecretStr], prefix: str = GATEWAY_REDIS_PREFIX
) -> list[str]:
    """``redis.conf`` ``user`` lines for every service that uses Redis (in ``passwords``)."""
    lines = []
    for service, password in passwords.items():
        rules = redis_acl_rules(service, password, prefix)
        if rules is not None:
            lines.append(" ".join(["user", user_name(service), *rules]))
    return lines
