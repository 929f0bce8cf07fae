"""Decision identity at the gateway (issue 12, point 3): a key reused by two reviewers, or by one
reviewer on another task once its replay record is gone, is a distinct vote with a distinct
``decision_id`` (= ``loupe.schemas.decision_identity``), never a silently merged one."""

from __future__ import annotations

import redis.asyncio as aioredis

from harness.kafka import produce, read_all
from loupe.gateway.logic import Role
from loupe.schemas import ReviewDecision, decision_identity, decode
from loupe.schemas.topics import REVIEW_DECISIONS, REVIEW_REQUESTS

LABEL = {"kind": "classification", "label": "dog"}


async def _queue(gateway, kafka_bootstrap, topic_prefix, requests) -> None:
    produce(
        kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}", [(r.item_id, r) for r in requests]
    )

    async def queued():
        return await gateway.queue_size("ann", "reviewer") >= len(requests)

    await gateway.wait_for(queued, what="requests queued")


async def _claim_and_decide(gateway, user: str, key: str, action: str = "approve"):
    claim = await gateway.call("POST", "/v1/tasks/claim", user)
    assert claim.status_code == 200, claim.text
    task_id = claim.json()["task"]["task_id"]
    body = {"action": action, "idempotency_key": key}
    if action == "approve":
        body["label"] = LABEL
    return await gateway.call("POST", f"/v1/tasks/{task_id}/decision", user, json=body)


def _published(kafka_bootstrap, topic_prefix, expect: int) -> list[ReviewDecision]:
    records = read_all(kafka_bootstrap, f"{topic_prefix}{REVIEW_DECISIONS.name}", expect=expect)
    return [decode(ReviewDecision, r.value()) for r in records]


async def test_two_reviewers_using_the_task_id_as_key_are_two_votes(
    gateway, kafka_bootstrap, topic_prefix, make_request
):
    gateway.add_user("ann", Role.REVIEWER)
    gateway.add_user("bob", Role.REVIEWER)
    request = make_request("same-key", overlap=2)
    await _queue(gateway, kafka_bootstrap, topic_prefix, [request])
    first = await _claim_and_decide(gateway, "ann", request.request_id)
    second = await _claim_and_decide(gateway, "bob", request.request_id)
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert second.json()["task_votes"] == 2 and second.json()["task_complete"] is True
    decisions = _published(kafka_bootstrap, topic_prefix, expect=2)
    assert len({decision_identity(d) for d in decisions}) == 2
    assert sorted(d.decision_id for d in decisions) == sorted(
        decision_identity(d) for d in decisions
    )


async def test_a_key_reused_on_another_task_after_its_replay_window_is_a_new_decision(
    gateway, kafka_bootstrap, topic_prefix, make_request
):
    gateway.add_user("ann", Role.REVIEWER)
    await _queue(
        gateway,
        kafka_bootstrap,
        topic_prefix,
        [make_request("reuse-1", age_s=10), make_request("reuse-2", age_s=0)],
    )
    first = await _claim_and_decide(gateway, "ann", "my-key")
    assert first.status_code == 200, first.text
    # within the replay window the same key on another task is an error, not a vote
    second_claim = await gateway.call("POST", "/v1/tasks/claim", "ann")
    second_task = second_claim.json()["task"]["task_id"]
    body = {"action": "approve", "label": LABEL, "idempotency_key": "my-key"}
    refused = await gateway.call("POST", f"/v1/tasks/{second_task}/decision", "ann", json=body)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "idempotency_conflict"
    # the replay record is gone (its TTL ran out, or a rebuild): the same key is a new decision
    client = aioredis.Redis.from_url(gateway.settings.redis_url)
    try:
        assert await client.delete(f"{gateway.settings.redis_prefix}idem:ann:my-key") == 1
    finally:
        await client.aclose()
    later = await gateway.call("POST", f"/v1/tasks/{second_task}/decision", "ann", json=body)
    assert later.status_code == 200, later.text
    assert later.json()["replayed"] is False
    assert later.json()["decision_id"] != first.json()["decision_id"]
    decisions = _published(kafka_bootstrap, topic_prefix, expect=2)
    assert len({d.decision_id for d in decisions}) == 2
    assert {d.decision_id for d in decisions} == {decision_identity(d) for d in decisions}
