"""Acceptance: 50 concurrent reviewers drain 5,000 tasks with overlap 2."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter, defaultdict

import pytest

from harness.kafka import produce, read_all
from loupe.gateway.logic import Role
from loupe.schemas import ReviewDecision, decode
from loupe.schemas.topics import REVIEW_DECISIONS, REVIEW_REQUESTS

TASKS = int(os.environ.get("GW_DRAIN_TASKS", "5000"))
REVIEWERS = 50
OVERLAP = 2


@pytest.fixture
def gw_settings(gw_settings):
    """Scripted reviewers at full speed: no per-token rate limit (test_gateway_rate_limit)."""
    return gw_settings.model_copy(update={"rate_limit": ""})


async def test_fifty_reviewers_drain_five_thousand_tasks(
    gateway, make_request, kafka_bootstrap, topic_prefix
):
    reviewers = [f"r{i:02d}" for i in range(REVIEWERS)]
    for reviewer in reviewers:
        gateway.add_user(reviewer, Role.REVIEWER)
    requests = [
        make_request(f"item-{i:05d}", overlap=OVERLAP, priority=i % 100, age_s=i % 977)
        for i in range(TASKS)
    ]
    produce(
        kafka_bootstrap,
        f"{topic_prefix}{REVIEW_REQUESTS.name}",
        [(r.item_id, r) for r in requests],
    )

    async def all_queued() -> bool:
        return await gateway.queue_size("r00", "reviewer") == TASKS

    await gateway.wait_for(all_queued, timeout_s=120, what="all requests queued")

    holders: dict[str, set[str]] = defaultdict(set)
    """task -> reviewers currently holding a lease (must never exceed the free slots)."""
    decided: dict[str, list[str]] = defaultdict(list)
    violations: list[str] = []
    deadline = time.monotonic() + 400

    async def work(reviewer: str) -> None:
        count = 0
        while time.monotonic() < deadline:
            claim = await gateway.call("POST", "/v1/tasks/claim", reviewer)
            if claim.status_code == 204:
                return
            assert claim.status_code == 200, claim.text
            task_id = claim.json()["task"]["task_id"]
            if reviewer in holders[task_id] or reviewer in decided[task_id]:
                violations.append(f"{reviewer} got {task_id} twice")
            holders[task_id].add(reviewer)
            if len(holders[task_id]) + len(decided[task_id]) > OVERLAP:
                violations.append(f"{task_id} over-assigned: {holders[task_id]} {decided[task_id]}")
            count += 1
            response = await gateway.call(
                "POST",
                f"/v1/tasks/{task_id}/decision",
                reviewer,
                json={
                    "action": "approve",
                    "label": {"kind": "classification", "label": "cat"},
                    "idempotency_key": f"{reviewer}-{count}",
                },
            )
            assert response.status_code == 200, response.text
            holders[task_id].discard(reviewer)
            decided[task_id].append(reviewer)

    await asyncio.gather(*(work(r) for r in reviewers))
    assert violations == []
    assert len(decided) == TASKS
    for task_id, voters in decided.items():
        assert len(voters) == OVERLAP, (task_id, voters)
        assert len(set(voters)) == OVERLAP, (task_id, voters)
    records = read_all(
        kafka_bootstrap, f"{topic_prefix}{REVIEW_DECISIONS.name}", expect=TASKS * OVERLAP
    )
    published = [decode(ReviewDecision, r.value()) for r in records]
    assert len(published) == TASKS * OVERLAP
    per_task = Counter(d.task_id for d in published)
    assert set(per_task.values()) == {OVERLAP}
    assert len({(d.task_id, d.reviewer.id) for d in published}) == TASKS * OVERLAP
