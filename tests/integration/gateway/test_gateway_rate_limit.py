"""Per-token rate limits (issue 12, point 4): a token over ``LOUPE_GATEWAY_RATE_LIMIT`` gets
``429 rate_limited`` with ``Retry-After``; another token, of another person or the same one, is
not affected; once the window is over the token works again. Real gateway and Redis."""

from __future__ import annotations

import asyncio

import redis

from loupe.gateway import metrics
from loupe.gateway.logic import Role
from loupe.gateway.projector import Projector
from loupe.runtime.connections import redis_kwargs

from .conftest import PEPPER

LIMIT = 3
WINDOW_S = 5


async def test_a_token_over_its_rate_gets_429_until_the_window_ends(launch_gateway) -> None:
    async with launch_gateway(rate_limit=f"{LIMIT}/{WINDOW_S} seconds") as gateway:
        gateway.add_user("ann", Role.REVIEWER)
        gateway.add_user("bob", Role.REVIEWER)
        refused_before = metrics.RATE_LIMITED._value.get()

        answers = []
        for _ in range(4 * LIMIT):  # the window is far longer than these requests take
            answers.append(await gateway.call("GET", "/v1/me", "ann"))
            if answers[-1].status_code == 429:
                break
        assert [a.status_code for a in answers] == [200] * LIMIT + [429]
        refused = answers[-1]
        error = refused.json()["error"]
        assert error["code"] == "rate_limited"
        assert f"{LIMIT} per {WINDOW_S} second" in error["message"]
        retry_after = int(refused.headers["retry-after"])
        assert 1 <= retry_after <= WINDOW_S + 1
        assert error["details"] == {"retry_after_s": retry_after}
        assert metrics.RATE_LIMITED._value.get() == refused_before + 1

        # counted per token: another person's, and another token of ann's, are not affected
        assert (await gateway.call("GET", "/v1/me", "bob")).status_code == 200
        second, _, _ = gateway.users_file.issue_token("ann", PEPPER)
        client = redis.Redis.from_url(**redis_kwargs(gateway.settings.redis))
        try:
            Projector(client, gateway.settings.redis_prefix).load_users(gateway.users_file)
        finally:
            client.close()
        other_tab = {"Authorization": f"Bearer {second}"}
        assert (await gateway.client.get("/v1/me", headers=other_tab)).status_code == 200

        # after the wait it was told, the token works again
        await asyncio.sleep(retry_after)
        assert (await gateway.call("GET", "/v1/me", "ann")).status_code == 200


async def test_an_empty_setting_limits_nothing(launch_gateway) -> None:
    async with launch_gateway(rate_limit="") as gateway:
        gateway.add_user("ann", Role.REVIEWER)
        answers = [await gateway.call("GET", "/v1/me", "ann") for _ in range(40)]
        assert {a.status_code for a in answers} == {200}
