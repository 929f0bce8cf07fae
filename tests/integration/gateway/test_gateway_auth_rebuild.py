"""Authentication across a Redis loss (real Kafka and Redis): while the working set is rebuilt a
valid token is answered ``503 rebuilding`` with ``Retry-After`` (or served), never ``401``; once
the rebuild is done an unknown token is ``401`` again."""

from __future__ import annotations

import asyncio

import redis

from loupe.gateway.logic import Role

UNKNOWN = {"Authorization": "Bearer lp_not-a-token"}


def _flush(redis_url: str, hold_rebuild_lock_of: str | None = None) -> None:
    """FLUSHALL; with a prefix, atomically also take that gateway's rebuild lock, as another
    gateway instance that started rebuilding the shared Redis first would."""
    client = redis.Redis.from_url(redis_url)
    with client.pipeline(transaction=True) as pipe:
        pipe.flushall()
        if hold_rebuild_lock_of is not None:
            pipe.set(f"{hold_rebuild_lock_of}rebuild-lock", "another-gateway", ex=300)
        pipe.execute()
    client.close()


def _rebuilding(response) -> bool:
    return (
        response.status_code == 503
        and response.json()["error"]["code"] == "rebuilding"
        and int(response.headers["retry-after"]) >= 1
    )


async def test_a_valid_token_is_never_401_while_the_gateway_rebuilds(gateway, redis_url):
    gateway.add_user("ann", Role.REVIEWER)
    assert (await gateway.call("GET", "/v1/me", "ann")).status_code == 200
    prefix = gateway.settings.redis_prefix

    # another instance holds the rebuild: the users are not back yet, for as long as it takes
    _flush(redis_url, hold_rebuild_lock_of=prefix)
    for _ in range(5):
        me = await gateway.call("GET", "/v1/me", "ann")
        assert _rebuilding(me), f"{me.status_code} {me.text}"
        claim = await gateway.call("POST", "/v1/tasks/claim", "ann")
        assert _rebuilding(claim), f"{claim.status_code} {claim.text}"
        # an unknown token cannot be told from a valid one until the users are back
        assert _rebuilding(await gateway.client.get("/v1/me", headers=UNKNOWN))
        await asyncio.sleep(0.1)

    # that instance goes away: this gateway's consumer rebuilds (users first) and serves again
    client = redis.Redis.from_url(redis_url)
    client.delete(f"{prefix}rebuild-lock")
    client.close()

    async def served():
        response = await gateway.call("GET", "/v1/me", "ann")
        assert response.status_code != 401, response.text
        health = (await gateway.call("GET", "/healthz")).json()
        return response.status_code == 200 and not health["rebuilding"]

    await gateway.wait_for(served, what="rebuilt")
    unknown = await gateway.client.get("/v1/me", headers=UNKNOWN)
    assert unknown.status_code == 401 and unknown.json()["error"]["code"] == "unauthenticated"


async def test_right_after_a_flush_a_valid_token_gets_503_or_200(gateway, redis_url):
    gateway.add_user("ann", Role.REVIEWER)
    seen = set()
    for _ in range(3):
        _flush(redis_url)  # this gateway notices within a second and rebuilds by itself

        async def served():
            response = await gateway.call("GET", "/v1/me", "ann")
            seen.add(response.status_code)
            assert response.status_code == 200 or _rebuilding(response), response.text
            health = (await gateway.call("GET", "/healthz")).json()
            return response.status_code == 200 and not health["rebuilding"]

        await gateway.wait_for(served, what="rebuilt")
    assert 200 in seen
    unknown = await gateway.client.get("/v1/me", headers=UNKNOWN)
    assert unknown.status_code == 401
