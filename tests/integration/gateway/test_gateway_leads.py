"""Leads and items: comments, history, diff, final call, reassign, conflicts, policy, quality."""

from __future__ import annotations

import asyncio

from harness import samples
from harness.kafka import produce, read_all
from harness.samples import boxes
from loupe.gateway.logic import Role
from loupe.schemas import (
    AuditAction,
    AuditEvent,
    PolicyUpdate,
    Provenance,
    ResolutionMethod,
    ResolvedLabel,
    ReviewDecision,
    decode,
)
from loupe.schemas.topics import (
    AUDIT,
    CONTROL_POLICY,
    LABELS_CONFLICTS,
    LABELS_RESOLVED,
    REVIEW_DECISIONS,
    REVIEW_REQUESTS,
)

BOXES_CORRECTED = {
    "kind": "bbox",
    "image": {"width": 640, "height": 480},
    "boxes": [
        {"label": "cat", "x": 10, "y": 20, "w": 100, "h": 80},
        {"label": "fox", "x": 300, "y": 200, "w": 120, "h": 150},
        {"label": "dog", "x": 500, "y": 10, "w": 50, "h": 50},
    ],
}


async def _queue(gateway, kafka_bootstrap, topic_prefix, requests, user):
    produce(
        kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}", [(r.item_id, r) for r in requests]
    )

    async def queued():
        return await gateway.queue_size(user, "reviewer") >= len(requests)

    await gateway.wait_for(queued, what="requests queued")


async def test_comments_history_votes_and_diff(
    gateway, make_request, kafka_bootstrap, topic_prefix
):
    gateway.add_user("ann", Role.REVIEWER)
    gateway.add_user("sam", Role.SENIOR)
    gateway.add_user("lee", Role.LEAD)
    request = make_request("img-1", kind="bbox", overlap=2)
    await _queue(gateway, kafka_bootstrap, topic_prefix, [request], "ann")
    task = (await gateway.call("POST", "/v1/tasks/claim", "ann")).json()["task"]
    assert task["task_type"] == "bbox" and task["votes"] is None
    posted = await gateway.call("POST", "/v1/items/img-1/comments", "ann", json={"text": "fox?"})
    assert posted.status_code == 201
    comments = (await gateway.call("GET", "/v1/items/img-1/comments", "sam")).json()["comments"]
    assert [c["text"] for c in comments] == ["fox?"]
    assert comments[0]["author"] == {"id": "ann", "role": "reviewer"}
    decided = await gateway.call(
        "POST",
        f"/v1/tasks/{task['task_id']}/decision",
        "ann",
        json={"action": "correct", "label": BOXES_CORRECTED, "idempotency_key": "c1"},
    )
    assert decided.status_code == 200, decided.text
    # blind review: other reviewers do not see votes before resolution; leads do
    assert (await gateway.call("GET", "/v1/items/img-1", "sam")).json()["votes"] is None
    lead_view = (await gateway.call("GET", "/v1/items/img-1", "lee")).json()
    assert [v["reviewer"]["id"] for v in lead_view["votes"]] == ["ann"]
    not_yet = await gateway.call("GET", "/v1/items/img-1/diff", "ann")
    assert not_yet.status_code == 409
    decision_id = lead_view["votes"][0]["decision_id"]
    vote_diff = await gateway.call("GET", f"/v1/items/img-1/diff?decision_id={decision_id}", "lee")
    summary = vote_diff.json()["summary"]
    assert (summary["kept"], summary["relabelled"], summary["added"]) == (1, 1, 1)
    # the final label arrives: everyone may see votes and the diff against it
    final = ResolvedLabel(
        item_id="img-1",
        project="demo",
        revision=2,
        label=boxes("img-1").label,
        method=ResolutionMethod.WEIGHTED,
        provenance=Provenance(prediction=request.prediction, request_ids=[request.request_id]),
        first_seen_at=request.created_at,
        resolved_at=request.created_at,
    )
    produce(kafka_bootstrap, f"{topic_prefix}{LABELS_RESOLVED.name}", [("img-1", final)])

    async def resolved():
        item = (await gateway.call("GET", "/v1/items/img-1", "sam")).json()
        return item if item["resolved"] else None

    item = await gateway.wait_for(resolved, what="resolution consumed")
    assert item["votes"] is not None and item["tasks"][0]["status"] == "resolved"
    final_diff = (await gateway.call("GET", "/v1/items/img-1/diff", "ann")).json()
    assert final_diff["against"] == "final" and final_diff["summary"]["changed"] is False

    async def history():
        response = await gateway.call("GET", "/v1/items/img-1/history", "sam")
        actions = [e["action"] for e in response.json()["events"]]
        return actions if {"claim", "comment", "decision"} <= set(actions) else None

    assert await gateway.wait_for(history, what="audit history")
    assert (await gateway.call("GET", "/v1/items/img-1/history", "ann")).status_code == 403

    async def scored():
        rows = (await gateway.call("GET", "/v1/reviewers/quality", "lee")).json()["reviewers"]
        return rows if rows and rows[0]["scored"] == 1 else None

    rows = await gateway.wait_for(scored, what="quality scored")
    assert rows[0]["id"] == "ann" and rows[0]["agreed"] == 0 and rows[0]["votes"] == 1


async def test_lead_resolve_reassign_conflicts_and_policy(
    gateway, make_request, kafka_bootstrap, topic_prefix
):
    gateway.add_user("ann", Role.REVIEWER)
    gateway.add_user("bob", Role.REVIEWER)
    gateway.add_user("lee", Role.LEAD)
    await _queue(
        gateway,
        kafka_bootstrap,
        topic_prefix,
        [make_request("a", age_s=10), make_request("b", age_s=5)],
        "ann",
    )
    held = (await gateway.call("POST", "/v1/tasks/claim", "ann")).json()["task"]
    assert held["item_id"] == "a"
    moved = await gateway.call(
        "POST",
        f"/v1/tasks/{held['task_id']}/reassign",
        "lee",
        json={"from_user": "ann", "to_user": "bob", "reason": "ann is away"},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["revoked"] == ["ann"] and moved.json()["assigned_to"] == "bob"
    stale = await gateway.call(
        "POST",
        f"/v1/tasks/{held['task_id']}/decision",
        "ann",
        json={"action": "reject", "idempotency_key": "z"},
    )
    assert stale.status_code == 409
    too_high = await gateway.call(
        "POST", "/v1/tasks/req-b/reassign", "lee", json={"tier": "senior", "to_user": "ann"}
    )
    assert too_high.status_code == 409 and too_high.json()["error"]["code"] == "not_eligible"
    final = await gateway.call(
        "POST",
        "/v1/items/b/resolve",
        "lee",
        json={
            "action": "correct",
            "label": {"kind": "classification", "label": "fox"},
            "reason": "obvious fox",
            "idempotency_key": "final-b",
        },
    )
    assert final.status_code == 200, final.text
    assert final.json()["closed_tasks"] == ["req-b"]
    assert (await gateway.call("POST", "/v1/tasks/claim", "ann")).status_code == 204
    decisions = read_all(kafka_bootstrap, f"{topic_prefix}{REVIEW_DECISIONS.name}", expect=1)
    lead_call = decode(ReviewDecision, decisions[0].value())
    assert lead_call.final is True and lead_call.reviewer.id == "lee"

    conflict = samples.conflict("a", created_at=make_request("a").created_at)
    produce(kafka_bootstrap, f"{topic_prefix}{LABELS_CONFLICTS.name}", [("a", conflict)])

    async def conflicts():
        body = (await gateway.call("GET", "/v1/conflicts?project=demo", "lee")).json()
        return body["conflicts"]

    assert [c["conflict_id"] for c in await gateway.wait_for(conflicts)] == ["c-1"]

    assert (await gateway.call("GET", "/v1/policy/demo", "lee")).status_code == 404
    policy = {
        "project": "demo",
        "label_schema": {"id": "animals", "version": 1, "classes": ["cat", "dog", "fox"]},
    }
    put = await gateway.call(
        "PUT", "/v1/policy/demo", "lee", json={"policy": policy, "reason": "add fox"}
    )
    assert put.status_code == 200, put.text
    assert put.json()["version"] == 1
    stale_put = await gateway.call(
        "PUT", "/v1/policy/demo", "lee", json={"policy": policy, "expected_version": 0}
    )
    assert stale_put.status_code == 409
    wrong = await gateway.call("PUT", "/v1/policy/other", "lee", json={"policy": policy})
    assert wrong.status_code == 422
    updates = read_all(kafka_bootstrap, f"{topic_prefix}{CONTROL_POLICY.name}", expect=1)
    update = decode(PolicyUpdate, updates[0].value())
    assert update.version == 1 and update.changed_by.id == "lee" and update.reason == "add fox"
    audit = [
        decode(AuditEvent, r.value())
        for r in read_all(kafka_bootstrap, f"{topic_prefix}{AUDIT.name}", idle_s=2.0)
    ]
    actions = {e.action for e in audit}
    assert {AuditAction.REASSIGN, AuditAction.OVERRIDE, AuditAction.POLICY_CHANGE} <= actions


async def test_concurrent_policy_changes_never_publish_a_version_twice(
    gateway, kafka_bootstrap, topic_prefix
):
    gateway.add_user("lee", Role.LEAD)
    policy = {
        "project": "demo",
        "label_schema": {"id": "animals", "version": 1, "classes": ["cat", "dog"]},
    }

    async def put(**extra):
        return await gateway.call("PUT", "/v1/policy/demo", "lee", json={"policy": policy, **extra})

    # eight leads racing from version 0: exactly one wins, the others are told why they lost
    racing = await asyncio.gather(*(put(expected_version=0) for _ in range(8)))
    assert sorted(r.status_code for r in racing) == [200] + [409] * 7
    assert {r.json()["error"]["code"] for r in racing if r.status_code == 409} <= {
        "version_conflict",
        "policy_change_in_progress",
    }
    # without expected_version every accepted change gets a version of its own
    blind = await asyncio.gather(*(put(reason=f"r{i}") for i in range(8)))
    accepted = [r.json()["version"] for r in blind if r.status_code == 200]
    assert accepted and len(set(accepted)) == len(accepted)
    assert all(r.status_code in {200, 409} for r in blind)
    topic = f"{topic_prefix}{CONTROL_POLICY.name}"
    published = [decode(PolicyUpdate, m.value()).version for m in read_all(kafka_bootstrap, topic)]
    assert sorted(published) == list(range(1, 2 + len(accepted)))
