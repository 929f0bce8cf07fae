"""Redis ACL users per service: the one table of what each Loupe service may do in Redis.

Only the reviewer gateway and the metrics service use Redis. The gateway owns its working set
(every key under its prefix: tasks, leases, votes, tokens); the metrics service reads the queues
from it and writes nothing. The router, the resolver and the model have no Redis user at all,
so a leaked router or resolver credential cannot read a token grant or rewrite a vote, and a
leaked metrics credential cannot change anything.

Each user is confined to the gateway's keys (``~<prefix>*``, checked by Redis for commands run
inside Lua scripts too) and to the command categories its code needs, never ``@admin`` or
``@dangerous`` (``FLUSHALL``, ``CONFIG``, ``KEYS``, ``DEBUG``...). The password is written as its
SHA-256 (``#<hex>``), so the rules hold no usable secret.
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

_NO_ADMIN_NO_KEY_LISTING = ("-@admin", "-@dangerous", "-scan", "-randomkey", "-dbsize", "-select")
"""Taken from every user after its grants: no administration, and no listing of key names."""

REDIS_GRANTS: Mapping[Service, tuple[str, ...]] = {
    Service.GATEWAY: (
        "-@all",
        "+@read",
        "+@write",
        "+@transaction",
        "+@connection",
        "+eval",
        "+evalsha",
        "+script|load",
        "+script|exists",
        *_NO_ADMIN_NO_KEY_LISTING,
        "-function",
        "+info",
        "+time",
    ),
    Service.METRICS: (
        "-@all",
        "+@read",
        "+@connection",
        *_NO_ADMIN_NO_KEY_LISTING,
    ),
}
"""Commands per service, applied in order; a service missing here gets no Redis user. The
gateway runs Lua by SHA (``EVALSHA``, ``SCRIPT LOAD`` on a miss), never ``FUNCTION`` or a
script or function flush, reads ``INFO`` (``evicted_keys``: a partial loss starts a rebuild)
and ``TIME`` (in the claim's script: the floor of the lease fencing tokens). Neither may list
key names (``SCAN``, ``RANDOMKEY``, ``DBSIZE``: on a shared Redis those are other applications'
names) or switch databases."""

KEY_PATTERNS: Mapping[Service, tuple[str, ...]] = {
    Service.GATEWAY: ("~{prefix}*",),
    Service.METRICS: ("%R~{prefix}*",),
}
"""Keys per service: the gateway owns its prefix; the metrics service may only read it (one
gateway prefix may hold several deployments' sub-prefixes, so its queues cannot be told apart
from the rest by a pattern)."""


def redis_acl_rules(
    service: Service, password: SecretStr, prefix: str = GATEWAY_REDIS_PREFIX
) -> list[str] | None:
    """The ``ACL SETUSER`` / ``redis.conf`` ``user`` rules of ``service``'s Redis user, or
    None when the service has no business in Redis."""
    grants = REDIS_GRANTS.get(service)
    if grants is None:
        return None
    if not prefix.endswith(":") or any(char in prefix for char in "*?[]\\ \t\r\n"):
        raise ValueError(
            "a Redis key prefix ending in ':' without glob characters or spaces (so that "
            f"its pattern matches its own keys only), not {prefix!r}"
        )
    digest = hashlib.sha256(password.get_secret_value().encode()).hexdigest()
    keys = [pattern.format(prefix=prefix) for pattern in KEY_PATTERNS[service]]
    return ["reset", "on", f"#{digest}", *keys, "resetchannels", *grants]


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
