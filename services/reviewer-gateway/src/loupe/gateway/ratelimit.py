"""Per-token request rate limits (``LOUPE_GATEWAY_RATE_LIMIT``), counted in Redis by ``limits``.

Every authenticated request counts against its token (keyed by the token's id, never the token
or its hash), in Redis under the gateway's prefix, so the replicas of one deployment share the
counts. Over any of the limits the answer is ``429 rate_limited`` with ``Retry-After``.

The strategy is ``limits``' fixed window: one Lua call (``INCRBY`` + ``EXPIRE`` of one key) per
limit and request, and one small key per token and limit. It lets a client send up to twice a
limit across a window's end, which is harmless for what it is for (a runaway script or a leaked
token cannot flood the gateway); a moving window would keep one list entry per request
(1,000 entries per token for ``1000/minute``) and cost an ``LRANGE``-sized script per request.
Redis down: the limiter raises redis-py's own errors, which the app answers with
``503 redis_unavailable`` like any other Redis call.
"""

from __future__ import annotations

import math
import time
from typing import Any

import redis.asyncio as aioredis
from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter

from loupe.gateway import metrics
from loupe.gateway.errors import ApiError


def parse_rate_limit(spec: str) -> list[RateLimitItem]:
    """The limits of a ``limits`` rate string (``"30/second;1200/minute"``); none for an empty
    string (no limit). ``ValueError`` for anything else, and for a limit of 0 (which would
    refuse every request)."""
    spec = spec.strip()
    try:
        items = parse_many(spec) if spec else []
    except ValueError as exc:
        example = "e.g. '30/second;1200/minute'"
        raise ValueError(f"rate limit {spec!r}: {exc} ({example})") from None
    if any(item.amount < 1 for item in items):
        raise ValueError(f"rate limit {spec!r}: every limit allows at least 1 request")
    return items


def retry_after_s(reset_at: float, now: float) -> int:
    """Whole seconds until a window resets (``Retry-After``), never early: ``limits`` derives
    ``reset_at`` from the key's TTL in whole seconds (truncated), so one more second is added
    rather than rounding; at least 1."""
    return max(1, math.floor(reset_at - now) + 1)


class TokenRateLimit:
    """The per-token limits of one gateway, on the gateway's own Redis connections (its
    connection pool, so TLS, the password and the ACL user are the app's)."""

    def __init__(self, client: aioredis.Redis, prefix: str, spec: str) -> None:
        self.items = parse_rate_limit(spec)
        # ``limits`` types its client options as scalars; a pool is what redis-py takes too
        pool: dict[str, Any] = {"connection_pool": client.connection_pool}
        storage = RedisStorage(
            "async+redis://", implementation="redispy", key_prefix=f"{prefix}rate", **pool
        )
        self._limiter = FixedWindowRateLimiter(storage)

    async def hit(self, token_id: str) -> None:
        """Count one request of the token; ``429 rate_limited`` (with ``Retry-After``: until the
        last exceeded window resets) when it is over a limit."""
        exceeded = [item for item in self.items if not await self._limiter.hit(item, token_id)]
        if not exceeded:
            return
        metrics.RATE_LIMITED.inc()
        now = time.time()
        waits = [
            retry_after_s((await self._limiter.get_window_stats(item, token_id)).reset_time, now)
            for item in exceeded
        ]
        limits = ", ".join(str(item) for item in exceeded)
        raise ApiError(
            429,
            "rate_limited",
            f"this token is over its request rate limit ({limits}); retry after {max(waits)} s",
            details={"retry_after_s": max(waits)},
            headers={"Retry-After": str(max(waits))},
        )
