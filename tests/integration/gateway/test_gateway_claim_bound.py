"""A claim reads a bounded number of queued entries, whatever the queues hold (issue 12, point
4): project scope and skills pick queues, they are never scanned for."""

from __future__ import annotations

import redis

from loupe.gateway.logic import Role
from loupe.gateway.projector import Projector
from loupe.runtime.connections import redis_kwargs

BEHIND = 2_500
"""Ineligible tasks of each kind ahead of the one the caller may take: more than the old
scan limit (2,000) reached."""

READS_BOUND = 20
"""Task reads (``HMGET``) and queue reads (``ZRANGE``) one claim may make here: a few queues,
one entry each; a scan of the queue made thousands."""


def _calls(client: redis.Redis, command: str) -> int:
    stats = client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_a_claim_finds_its_task_behind_thousands_it_may_not_take_in_a_few_reads(
    launch_gateway, make_request
):
    async with launch_gateway() as gateway:
        gateway.add_user("ann", Role.REVIEWER, projects=["demo"])  # no skills
        client = redis.Redis.from_url(**redis_kwargs(gateway.settings.redis))
        try:
            projector = Projector(client, gateway.settings.redis_prefix)
            older = [make_request(f"fr-{i}", skills=["fr"], age_s=9_000 + i) for i in range(BEHIND)]
            older += [
                make_request(f"other-{i}", project="other", age_s=9_000 + i) for i in range(BEHIND)
            ]
            for request in [*older, make_request("plain", age_s=0)]:
                projector.request(request, request.to_json_bytes())
            reads = {cmd: _calls(client, cmd) for cmd in ("hmget", "zrange")}
            claim = await gateway.call("POST", "/v1/tasks/claim", "ann")
            spent = {cmd: _calls(client, cmd) - n for cmd, n in reads.items()}
        finally:
            client.close()
        assert claim.status_code == 200, claim.text
        assert claim.json()["task"]["item_id"] == "plain"
        assert sum(spent.values()) <= READS_BOUND, spent
