"""A claim that gives up at the scan limit says so (header, metric) instead of a silent 204."""

from __future__ import annotations

import httpx

from harness.kafka import produce
from loupe.gateway.logic import Role
from loupe.schemas.topics import REVIEW_REQUESTS


def _scan_limit_claims(text: str) -> float:
    for line in text.splitlines():
        if line.startswith('loupe_gateway_claims_total{outcome="scan_limit"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_claim_that_hits_the_scan_limit_is_flagged_and_counted(
    launch_gateway, kafka_bootstrap, topic_prefix, make_request
):
    async with launch_gateway(claim_scan_limit=10) as gateway:
        gateway.add_user("ann", Role.REVIEWER)  # no skills
        gateway.add_user("flo", Role.REVIEWER, skills=["fr"])
        # twelve French tasks ahead of one anybody may take
        french = [make_request(f"fr-{i}", skills=["fr"], age_s=100 + i) for i in range(12)]
        plain = make_request("plain", age_s=0)
        produce(
            kafka_bootstrap,
            f"{topic_prefix}{REVIEW_REQUESTS.name}",
            [(r.item_id, r) for r in [*french, plain]],
        )

        async def queued():
            return await gateway.queue_size("ann", "reviewer") == 13

        await gateway.wait_for(queued, what="requests queued")
        before = _scan_limit_claims((await gateway.call("GET", "/metrics")).text)
        claim: httpx.Response = await gateway.call("POST", "/v1/tasks/claim", "ann")
        assert claim.status_code == 204
        assert claim.headers["x-loupe-claim"] == "scan-limit-reached"
        after = _scan_limit_claims((await gateway.call("GET", "/metrics")).text)
        assert after == before + 1
        # someone with the skill still gets the oldest French task
        flo = await gateway.call("POST", "/v1/tasks/claim", "flo")
        assert flo.status_code == 200 and flo.json()["task"]["item_id"] == "fr-11"
