"""Tell a refused Redis login or TLS handshake apart from Redis being down, at a service's start.

redis-py reports both a wrong password and an outage as errors that a service's own retry loop
would retry forever (its workers stay unready, logging warnings); a refusal will not cure itself,
so a service checks once at start and stops, saying which settings to fix.
"""

from __future__ import annotations

import ssl

import redis

from loupe.runtime.connections import RedisConnection, redis_kwargs


class RedisAccessError(RuntimeError):
    """Redis refused this client: its credentials or its TLS handshake."""


def check_redis_access(connection: RedisConnection, timeout_s: float = 10.0) -> None:
    """Return once Redis answers a PING over ``connection``.

    A refused password raises ``RedisAccessError`` naming ``LOUPE_REDIS_USERNAME`` and
    ``LOUPE_REDIS_PASSWORD``, a refused TLS handshake one naming the certificate settings (never
    their values). Anything else (Redis down, a timeout) raises the ``redis.RedisError`` itself:
    the caller's retries may outlast it.
    """
    client = redis.Redis.from_url(
        **redis_kwargs(connection), socket_timeout=timeout_s, socket_connect_timeout=timeout_s
    )
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        raise RedisAccessError(
            f"Redis refused the credentials at {connection.url}: {exc}; "
            "check LOUPE_REDIS_USERNAME and LOUPE_REDIS_PASSWORD"
        ) from None
    except redis.ConnectionError as exc:
        if not isinstance(exc.__context__, ssl.SSLError):
            raise
        raise RedisAccessError(
            f"the TLS handshake with Redis failed at {connection.url}: {exc}; check "
            "LOUPE_REDIS_CA_FILE, LOUPE_REDIS_CERT_FILE and LOUPE_REDIS_KEY_FILE"
        ) from None
    finally:
        client.close()
