"""Claim → decide round trip against real Kafka and Redis."""

from __future__ import annotations

import orjson

from harness.kafka import produce, read_all
from loupe.gateway.logic import Role
from loupe.schemas import ReviewDecision, decode
from loupe.schemas.topics import REVIEW_DECISIONS, REVIEW_REQUESTS


async def test_claim_decide_round_trip(gateway, make_request, kafka_bootstrap, topic_prefix):
    gateway.add_user("ann", Role.REVIEWER)
    request = make_request("item-1", overlap=1)
    produce(kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}", [("item-1", request)])

    async def queued():
        return await gateway.queue_size("ann", "reviewer") == 1

    await gateway.wait_for(queued, what="request queued")
    claim = await gateway.call("POST", "/v1/tasks/claim", "ann")
    assert claim.status_code == 200, claim.text
    body = claim.json()
    assert body["task"]["item_id"] == "item-1"
    assert body["task"]["confidence"] is not None
    task_id = body["task"]["task_id"]
    decision = await gateway.call(
        "POST",
        f"/v1/tasks/{task_id}/decision",
        "ann",
        json={
            "action": "correct",
            "label": {"kind": "classification", "label": "dog"},
            "seconds_spent": 3.5,
            "idempotency_key": "k1",
        },
    )
    assert decision.status_code == 200, decision.text
    result = decision.json()
    assert result["task_complete"] is True and result["replayed"] is False
    again = await gateway.call(
        "POST",
        f"/v1/tasks/{task_id}/decision",
        "ann",
        json={
            "action": "correct",
            "label": {"kind": "classification", "label": "dog"},
            "idempotency_key": "k1",
        },
    )
    assert again.status_code == 200 and again.json()["replayed"] is True
    assert again.json()["decision_id"] == result["decision_id"]
    assert "request_hash" not in result and "request_hash" not in again.json()
    other = await gateway.call(
        "POST",
        f"/v1/tasks/{task_id}/decision",
        "ann",
        json={
            "action": "correct",
            "label": {"kind": "classification", "label": "cat"},
            "idempotency_key": "k1",
        },
    )
    assert other.status_code == 409, other.text
    assert other.json()["error"]["code"] == "idempotency_conflict"
    records = read_all(kafka_bootstrap, f"{topic_prefix}{REVIEW_DECISIONS.name}", expect=1)
    decisions = [decode(ReviewDecision, r.value()) for r in records]
    assert [d.decision_id for d in decisions] == [result["decision_id"]]
    assert (
        decisions[0].label is not None
        and orjson.loads(decisions[0].label.model_dump_json())["label"] == "dog"
    )
    empty = await gateway.call("POST", "/v1/tasks/claim", "ann")
    assert empty.status_code == 204


def _long_tracks(frames: int) -> dict[str, object]:
    """A corrected track label over ``frames`` frames (about 120 bytes of JSON per frame)."""
    return {
        "kind": "track",
        "image": {"width": 1920, "height": 1080},
        "units": "normalized",
        "frames": [
            {
                "frame": n,
                "boxes": [
                    {"label": "cat", "track_id": "t1", "x": 0.1, "y": 0.1, "w": 0.2, "h": 0.2}
                ],
            }
            for n in range(frames)
        ],
    }


async def test_a_decision_too_large_for_a_record_is_refused_with_413(
    launch_gateway, make_request, kafka_bootstrap, topic_prefix
):
    async with launch_gateway(max_record_bytes=131_072) as gateway:
        gateway.add_user("ann", Role.REVIEWER)
        request = make_request("vid-1", kind="track")
        produce(kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}", [("vid-1", request)])

        async def queued():
            return await gateway.queue_size("ann", "reviewer") == 1

        await gateway.wait_for(queued, what="request queued")
        claim = await gateway.call("POST", "/v1/tasks/claim", "ann")
        task_id = claim.json()["task"]["task_id"]
        path = f"/v1/tasks/{task_id}/decision"
        body = {"action": "correct", "label": _long_tracks(2_000), "idempotency_key": "big"}
        refused = await gateway.call("POST", path, "ann", json=body)
        assert refused.status_code == 413, refused.text
        error = refused.json()["error"]
        assert error["code"] == "record_too_large" and "131,072 bytes" in error["message"]

        # the lease is still the reviewer's: a decision that fits goes through
        body = {"action": "correct", "label": _long_tracks(20), "idempotency_key": "small"}
        accepted = await gateway.call("POST", path, "ann", json=body)
        assert accepted.status_code == 200, accepted.text
        records = read_all(kafka_bootstrap, f"{topic_prefix}{REVIEW_DECISIONS.name}", expect=1)
        assert [decode(ReviewDecision, r.value()).idempotency_key for r in records] == ["small"]
