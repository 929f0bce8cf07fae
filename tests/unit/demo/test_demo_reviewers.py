"""The simulated reviewer's HTTP loop against a scripted gateway (httpx MockTransport)."""

from __future__ import annotations

import asyncio
import json
import random

import httpx

from loupe.demo.crowd import ReviewerProfile
from loupe.demo.reviewers import ReviewerStats, SimulatedReviewer
from loupe.schemas import Tier

PROFILE = ReviewerProfile("ada", "Ada", "reviewer", Tier.REVIEWER, 1.0, 1.0)


def claim_body(task_id: str, item_id: str) -> dict[str, object]:
    return {
        "task": {
            "task_id": task_id,
            "item_id": item_id,
            "allowed_classes": ["0", "1", "2"],
            "prediction": {"label": {"kind": "classification", "label": "1"}},
        },
        "lease": {"lease_id": "l", "task_id": task_id, "seconds": 600},
    }


class ScriptedGateway:
    """Hands out the given tasks once, answers decisions from a script, records every call."""

    def __init__(self, tasks: list[tuple[str, str]], decision_statuses: list[int]) -> None:
        self.tasks = list(tasks)
        self.decision_statuses = list(decision_statuses)
        self.calls: list[tuple[str, dict[str, object] | None]] = []
        self.idle_claims = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.calls.append((request.url.path, body))
        assert request.headers["Authorization"] == "Bearer tok"
        if request.url.path == "/v1/tasks/claim":
            if not self.tasks:
                self.idle_claims += 1
                return httpx.Response(204)
            task_id, item_id = self.tasks.pop(0)
            return httpx.Response(200, json=claim_body(task_id, item_id))
        if request.url.path.endswith("/decision"):
            status = self.decision_statuses.pop(0)
            return httpx.Response(status, json={"error": {"code": "x", "message": "m"}})
        if request.url.path.endswith("/release"):
            return httpx.Response(200, json={"released": True})
        return httpx.Response(404)


async def work(gateway: ScriptedGateway, truth: dict[str, str]) -> ReviewerStats:
    stats = ReviewerStats()
    stop = asyncio.Event()
    async with httpx.AsyncClient(
        base_url="http://gw", transport=httpx.MockTransport(gateway)
    ) as client:
        reviewer = SimulatedReviewer(
            client=client,
            profile=PROFILE,
            token="tok",
            truth=truth,
            project="digits",
            time_scale=0.0,
            stop=stop,
            stats=stats,
            rng=random.Random(1),
        )
        task = asyncio.create_task(reviewer.run())
        for _ in range(500):  # until the queue ran dry (bounded: 5 s)
            await asyncio.sleep(0.01)
            if gateway.idle_claims or stats.errors:
                break
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    return stats


def decisions(gateway: ScriptedGateway) -> list[dict[str, object]]:
    return [body for path, body in gateway.calls if path.endswith("/decision") and body]


def test_decision_is_retried_with_the_same_idempotency_key() -> None:
    gateway = ScriptedGateway([("t1", "i1")], decision_statuses=[503, 503, 200])
    stats = asyncio.run(work(gateway, {"i1": "2"}))
    sent = decisions(gateway)
    assert len(sent) == 3
    assert len({body["idempotency_key"] for body in sent}) == 1
    assert sent[0]["action"] == "correct"
    assert sent[0]["label"] == {"kind": "classification", "label": "2"}
    assert stats.claims == 1 and stats.decisions == 1 and stats.errors == 0


def test_lost_lease_is_counted_and_work_goes_on() -> None:
    gateway = ScriptedGateway([("t1", "i1"), ("t2", "i2")], decision_statuses=[409, 200])
    stats = asyncio.run(work(gateway, {"i1": "1", "i2": "1"}))
    assert stats.lost_leases == 1 and stats.decisions == 1
    assert decisions(gateway)[1]["action"] == "approve"


def test_items_outside_the_demo_are_released_not_decided() -> None:
    gateway = ScriptedGateway([("t1", "someone-elses")], decision_statuses=[])
    stats = asyncio.run(work(gateway, {}))
    assert ("/v1/tasks/t1/release", None) in gateway.calls
    assert not decisions(gateway) and stats.decisions == 0


def test_a_client_error_is_counted_not_fatal() -> None:
    gateway = ScriptedGateway([("t1", "i1")], decision_statuses=[422])
    stats = asyncio.run(work(gateway, {"i1": "1"}))
    assert stats.errors == 1 and "HTTP 422" in stats.last_error
