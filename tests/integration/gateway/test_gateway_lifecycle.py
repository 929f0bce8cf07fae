"""Lease expiry, skip, release, heartbeat and escalation against real Kafka and Redis."""

from __future__ import annotations

from confluent_kafka import Message

from harness.kafka import produce, read_all, read_until
from loupe.gateway.logic import Role
from loupe.schemas import Action, AuditAction, AuditEvent, ReviewDecision, Tier, decode
from loupe.schemas.topics import AUDIT, REVIEW_DECISIONS, REVIEW_REQUESTS

LABEL = {"kind": "classification", "label": "dog"}


async def _queue(gateway, kafka_bootstrap, topic_prefix, requests, user, tier="reviewer"):
    produce(
        kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}", [(r.item_id, r) for r in requests]
    )
    expected = len(requests)

    async def queued():
        return await gateway.queue_size(user, tier) >= expected

    await gateway.wait_for(queued, what="requests queued")


async def _decide(gateway, user, task_id, action, key, label=LABEL):
    body = {"action": action, "idempotency_key": key}
    if label is not None:
        body["label"] = label
    return await gateway.call("POST", f"/v1/tasks/{task_id}/decision", user, json=body)


async def test_expired_lease_returns_task_to_queue(
    launch_gateway, kafka_bootstrap, topic_prefix, make_request
):
    async with launch_gateway(lease_seconds=3.0) as gateway:
        gateway.add_user("ann", Role.REVIEWER)
        gateway.add_user("bob", Role.REVIEWER)
        await _queue(gateway, kafka_bootstrap, topic_prefix, [make_request("i1")], "ann")
        first = await gateway.call("POST", "/v1/tasks/claim", "ann")
        task_id = first.json()["task"]["task_id"]
        assert (await gateway.call("POST", "/v1/tasks/claim", "bob")).status_code == 204

        async def bob_gets_it():
            response = await gateway.call("POST", "/v1/tasks/claim", "bob")
            return response if response.status_code == 200 else None

        # the sweeper runs every 0.5 s here (default 1 s), so an expired lease is back within
        # lease + sweep period; the wait below is only a generous upper bound for a busy machine
        assert gateway.settings.sweep_interval_s < 5
        again = await gateway.wait_for(bob_gets_it, timeout_s=30.0, what="lease expiry")
        assert again.json()["task"]["task_id"] == task_id
        beat = await gateway.call("POST", f"/v1/tasks/{task_id}/heartbeat", "bob")
        assert beat.status_code == 200
        late = await _decide(gateway, "ann", task_id, "approve", "late")
        assert late.status_code == 409
        assert late.json()["error"]["code"] == "not_lease_holder"

        def lease_expired(records: list[Message]) -> bool:
            actions = [decode(AuditEvent, r.value()).action for r in records]
            return AuditAction.LEASE_EXPIRED in actions

        _, found = read_until(
            kafka_bootstrap, f"{topic_prefix}{AUDIT.name}", until=lease_expired, idle_s=0
        )
        assert found, "no lease_expired audit event"


async def test_skip_goes_to_others_and_never_back(
    gateway, kafka_bootstrap, topic_prefix, make_request
):
    gateway.add_user("ann", Role.REVIEWER)
    gateway.add_user("bob", Role.REVIEWER)
    await _queue(gateway, kafka_bootstrap, topic_prefix, [make_request("i1")], "ann")
    claim = await gateway.call("POST", "/v1/tasks/claim", "ann")
    task_id = claim.json()["task"]["task_id"]
    skipped = await _decide(gateway, "ann", task_id, "skip", "s1", label=None)
    assert skipped.status_code == 200, skipped.text
    assert skipped.json()["task_votes"] == 0
    assert (await gateway.call("POST", "/v1/tasks/claim", "ann")).status_code == 204
    bob = await gateway.call("POST", "/v1/tasks/claim", "bob")
    assert bob.json()["task"]["task_id"] == task_id
    done = await _decide(gateway, "bob", task_id, "approve", "b1")
    assert done.json()["task_complete"] is True
    records = read_all(kafka_bootstrap, f"{topic_prefix}{REVIEW_DECISIONS.name}", expect=2)
    assert sorted(decode(ReviewDecision, r.value()).action for r in records) == sorted(
        [Action.SKIP, Action.APPROVE]
    )


async def test_release_keeps_place_and_priority_order(
    gateway, kafka_bootstrap, topic_prefix, make_request
):
    gateway.add_user("ann", Role.REVIEWER)
    requests = [
        make_request("low", priority=10, age_s=100),
        make_request("high-new", priority=90, age_s=1),
        make_request("high-old", priority=90, age_s=50),
    ]
    await _queue(gateway, kafka_bootstrap, topic_prefix, requests, "ann")
    first = await gateway.call("POST", "/v1/tasks/claim", "ann")
    assert first.json()["task"]["item_id"] == "high-old"
    released = await gateway.call(
        "POST", f"/v1/tasks/{first.json()['task']['task_id']}/release", "ann"
    )
    assert released.status_code == 200
    order = []
    for _ in range(3):
        claim = await gateway.call("POST", "/v1/tasks/claim", "ann")
        order.append(claim.json()["task"]["item_id"])
    assert order == ["high-old", "high-new", "low"]


async def test_tiers_skills_and_escalation(gateway, kafka_bootstrap, topic_prefix, make_request):
    gateway.add_user("ann", Role.REVIEWER)
    gateway.add_user("sue", Role.SENIOR, skills=["de"])
    await _queue(gateway, kafka_bootstrap, topic_prefix, [make_request("i1")], "ann")
    claim = await gateway.call("POST", "/v1/tasks/claim", "ann")
    task_id = claim.json()["task"]["task_id"]
    escalated = await _decide(gateway, "ann", task_id, "escalate", "e1", label=None)
    assert escalated.status_code == 200, escalated.text
    # the resolver answers an escalation with a higher-tier request for the same item
    senior_request = make_request(
        "i1", tier=Tier.SENIOR, request_id="req-i1-esc", escalation_level=1, skills=["de"]
    )
    await _queue(gateway, kafka_bootstrap, topic_prefix, [senior_request], "sue", tier="senior")
    assert (await gateway.call("POST", "/v1/tasks/claim", "ann")).status_code == 204
    sue = await gateway.call("POST", "/v1/tasks/claim", "sue")
    assert sue.status_code == 200
    assert sue.json()["task"]["task_id"] == "req-i1-esc"
    assert sue.json()["task"]["required_tier"] == "senior"
    records = read_all(kafka_bootstrap, f"{topic_prefix}{REVIEW_DECISIONS.name}", expect=1)
    assert decode(ReviewDecision, records[0].value()).action is Action.ESCALATE


async def test_skills_gate_claims(gateway, kafka_bootstrap, topic_prefix, make_request):
    gateway.add_user("ann", Role.REVIEWER)
    gateway.add_user("dora", Role.REVIEWER, skills=["de", "fr"])
    await _queue(gateway, kafka_bootstrap, topic_prefix, [make_request("i1", skills=["de"])], "ann")
    assert (await gateway.call("POST", "/v1/tasks/claim", "ann")).status_code == 204
    assert (await gateway.call("POST", "/v1/tasks/claim", "dora")).status_code == 200


async def test_invalid_labels_are_422(gateway, kafka_bootstrap, topic_prefix, make_request):
    gateway.add_user("ann", Role.REVIEWER)
    await _queue(gateway, kafka_bootstrap, topic_prefix, [make_request("i1")], "ann")
    task_id = (await gateway.call("POST", "/v1/tasks/claim", "ann")).json()["task"]["task_id"]
    unknown = await _decide(
        gateway, "ann", task_id, "correct", "x1", {"kind": "classification", "label": "emu"}
    )
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "invalid_label"
    assert "emu" in unknown.json()["error"]["message"]
    wrong_kind = await _decide(
        gateway,
        "ann",
        task_id,
        "correct",
        "x2",
        {"kind": "bbox", "image": {"width": 10, "height": 10}, "boxes": []},
    )
    assert wrong_kind.status_code == 422
    missing = await _decide(gateway, "ann", task_id, "approve", "x3", label=None)
    assert missing.status_code == 422
    malformed = await gateway.call(
        "POST",
        f"/v1/tasks/{task_id}/decision",
        "ann",
        content=b"{not json",
        headers={**gateway.auth("ann"), "content-type": "application/json"},
    )
    assert malformed.status_code == 422
    assert malformed.json()["error"]["code"] == "validation_error"
    huge = await gateway.call(
        "POST",
        f"/v1/tasks/{task_id}/decision",
        "ann",
        content=b"x" * 2_000_000,
        headers={**gateway.auth("ann"), "content-type": "application/json"},
    )
    assert huge.status_code == 413
    ok = await _decide(gateway, "ann", task_id, "correct", "x4")
    assert ok.status_code == 200
