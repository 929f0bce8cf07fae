"""Review integrity (issue 13, point 5): blind review holds on spot checks and escalations,
spot checks are not announced unless the policy says so, a tier never lends a role's powers,
and the lead's final call is idempotent."""

from __future__ import annotations

from harness import samples
from harness.kafka import produce, read_all
from loupe.gateway.audit import audit_event
from loupe.gateway.logic import Role
from loupe.schemas import (
    Actor,
    AuditAction,
    Provenance,
    ResolutionMethod,
    ResolvedLabel,
    ReviewDecision,
    Tier,
    decode,
)
from loupe.schemas.topics import AUDIT, LABELS_RESOLVED, REVIEW_DECISIONS, REVIEW_REQUESTS

CAT = {"kind": "classification", "label": "cat"}


async def _queue(gateway, kafka_bootstrap, topic_prefix, requests, user, tier="reviewer"):
    produce(
        kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}", [(r.item_id, r) for r in requests]
    )

    async def queued():
        return await gateway.queue_size(user, tier) >= len(requests)

    await gateway.wait_for(queued, what="requests queued")


async def _auto_label(gateway, kafka_bootstrap, topic_prefix, request, user):
    """The router's automatic label (revision 1) of a spot-checked item, seen by the gateway."""
    auto = ResolvedLabel(
        item_id=request.item_id,
        project=request.project,
        revision=1,
        label=request.prediction.label,
        method=ResolutionMethod.AUTO,
        provenance=Provenance(prediction=request.prediction, request_ids=[request.request_id]),
        first_seen_at=request.created_at,
        resolved_at=request.created_at,
    )
    produce(kafka_bootstrap, f"{topic_prefix}{LABELS_RESOLVED.name}", [(request.item_id, auto)])

    async def seen():
        item = (await gateway.call("GET", f"/v1/items/{request.item_id}", "lee")).json()
        return item["resolved"]

    await gateway.wait_for(seen, what="automatic label stored")


async def _earlier_outcome(gateway, kafka_bootstrap, topic_prefix, request):
    """A resolution and a lead's override of ``request``'s item, in its history (a lead's
    view)."""
    service = Actor(id="service:resolver", role="service")
    events = [
        audit_event(
            service,
            AuditAction.RESOLUTION,
            item_id=request.item_id,
            project=request.project,
            details={"revision": 1, "method": "auto", "outcome": "accepted"},
        ),
        audit_event(
            Actor(id="lee", role="lead"),
            AuditAction.OVERRIDE,
            item_id=request.item_id,
            project=request.project,
            details={"label": CAT},
        ),
    ]
    produce(kafka_bootstrap, f"{topic_prefix}{AUDIT.name}", [(request.item_id, e) for e in events])

    async def seen():
        path = f"/v1/items/{request.item_id}/history"
        history = (await gateway.call("GET", path, "lee")).json()["events"]
        return {"resolution", "override"} <= {e["action"] for e in history}

    await gateway.wait_for(seen, what="earlier outcome in the history")


async def test_blind_review_holds_on_a_spot_check(
    gateway, make_request, kafka_bootstrap, topic_prefix
):
    for user, role in (("ann", Role.REVIEWER), ("bob", Role.REVIEWER), ("sam", Role.SENIOR)):
        gateway.add_user(user, role)
    gateway.add_user("lee", Role.LEAD)
    request = make_request("s-1", overlap=3, spot_check=True)
    await _queue(gateway, kafka_bootstrap, topic_prefix, [request], "ann")
    await _auto_label(gateway, kafka_bootstrap, topic_prefix, request, "ann")
    task = (await gateway.call("POST", "/v1/tasks/claim", "ann")).json()["task"]
    voted = await gateway.call(
        "POST",
        f"/v1/tasks/{task['task_id']}/decision",
        "ann",
        json={"action": "correct", "label": CAT, "idempotency_key": "a1"},
    )
    assert voted.status_code == 200, voted.text
    for user in ("bob", "sam"):  # neither has voted yet
        item = (await gateway.call("GET", "/v1/items/s-1", user)).json()
        assert item["votes"] is None and item["votes_hidden"] is True, (user, item)
        assert item["resolved"] is None, (user, item["resolved"])
        diff = await gateway.call("GET", "/v1/items/s-1/diff", user)
        assert diff.status_code == 409, (user, diff.text)
    # an earlier round's outcome, on the audit topic as the resolver and a lead write it
    await _earlier_outcome(gateway, kafka_bootstrap, topic_prefix, request)
    outcomes = ("decision", "escalation", "resolution", "override")
    history = (await gateway.call("GET", "/v1/items/s-1/history", "sam")).json()["events"]
    assert [e for e in history if e["action"] in outcomes] == []
    assert history, "the rest of the history (claims) stays visible"
    # the voter and the lead see it all
    assert (await gateway.call("GET", "/v1/items/s-1", "ann")).json()["votes"] is not None
    lead = (await gateway.call("GET", "/v1/items/s-1", "lee")).json()
    assert lead["votes"] is not None and lead["resolved"] is not None


async def test_blind_review_holds_on_an_escalation(
    gateway, make_request, kafka_bootstrap, topic_prefix
):
    gateway.add_user("sam", Role.SENIOR)
    conflict = samples.conflict("e-1")
    request = make_request("e-1", tier=Tier.SENIOR, escalation_level=1).model_copy(
        update={"conflict": conflict}
    )
    await _queue(gateway, kafka_bootstrap, topic_prefix, [request], "sam", tier="senior")
    task = (await gateway.call("POST", "/v1/tasks/claim", "sam")).json()["task"]
    assert task["votes"] is None
    shown = task["conflict"]
    assert shown is not None and shown["conflict_id"] == conflict.conflict_id
    assert "votes" not in shown and "classes" not in shown, shown


async def test_spot_checks_are_announced_only_when_the_policy_says_so(
    gateway, make_request, kafka_bootstrap, topic_prefix
):
    gateway.add_user("ann", Role.REVIEWER)
    gateway.add_user("lee", Role.LEAD)
    request = make_request("s-2", overlap=2, spot_check=True)
    await _queue(gateway, kafka_bootstrap, topic_prefix, [request], "ann")
    task = (await gateway.call("POST", "/v1/tasks/claim", "ann")).json()["task"]
    assert task["spot_check"] is None
    assert all(r["code"] != "spot_check" for r in task["reasons"]), task["reasons"]
    item = (await gateway.call("GET", "/v1/items/s-2", "ann")).json()
    assert all(r["code"] != "spot_check" for r in item["reasons"]), item["reasons"]
    assert item["resolved"] is None
    # a lead sees what it is
    lead = (await gateway.call("GET", "/v1/items/s-2", "lee")).json()
    assert [r["code"] for r in lead["reasons"]] == ["spot_check"]
    policy = samples.policy("demo").model_dump(mode="json")
    policy["review"]["announce_spot_checks"] = True
    put = await gateway.call("PUT", "/v1/policy/demo", "lee", json={"policy": policy})
    assert put.status_code == 200, put.text
    gateway.add_user("bob", Role.REVIEWER)
    told = (await gateway.call("POST", "/v1/tasks/claim", "bob")).json()["task"]
    assert told["spot_check"] is True
    assert [r["code"] for r in told["reasons"]] == ["spot_check"]


async def test_a_tier_never_lends_a_role_its_powers(gateway):
    gateway.add_user("boss", Role.ADMIN)
    above = await gateway.call(
        "POST", "/v1/users", "boss", json={"id": "ann", "role": "reviewer", "tier": "lead"}
    )
    assert above.status_code == 422, above.text
    made = await gateway.call(
        "POST", "/v1/users", "boss", json={"id": "ann", "role": "reviewer", "tier": "annotator"}
    )
    assert made.status_code == 201, made.text
    raised = await gateway.call("PATCH", "/v1/users/ann", "boss", json={"tier": "lead"})
    assert raised.status_code == 422, raised.text
    assert raised.json()["error"]["code"] == "invalid_user"
    demoted = await gateway.call("PATCH", "/v1/users/ann", "boss", json={"role": "annotator"})
    assert demoted.status_code == 200 and demoted.json()["tier"] == "annotator"


async def test_the_lead_final_call_is_idempotent(
    gateway, make_request, kafka_bootstrap, topic_prefix
):
    gateway.add_user("lee", Role.LEAD)
    await _queue(gateway, kafka_bootstrap, topic_prefix, [make_request("f-1")], "lee")
    body = {"action": "correct", "label": CAT, "reason": "final"}
    first = await gateway.call(
        "POST", "/v1/items/f-1/resolve", "lee", json=body, headers={"Idempotency-Key": "f-1"}
    )
    assert first.status_code == 200, first.text
    again = await gateway.call(
        "POST", "/v1/items/f-1/resolve", "lee", json={**body, "idempotency_key": "f-1"}
    )
    assert again.status_code == 200, again.text
    assert again.json()["decision_id"] == first.json()["decision_id"]
    assert again.json()["replayed"] is True and first.json()["replayed"] is False
    assert "request_hash" not in first.json() and "request_hash" not in again.json()
    for changed in ({"reason": "another reason"}, {"action": "reject", "label": None}):
        other = await gateway.call(
            "POST",
            "/v1/items/f-1/resolve",
            "lee",
            json={**body, **changed, "idempotency_key": "f-1"},
        )
        assert other.status_code == 409, (changed, other.text)
        assert other.json()["error"]["code"] == "idempotency_conflict"
    records = read_all(kafka_bootstrap, f"{topic_prefix}{REVIEW_DECISIONS.name}", expect=1)
    assert [decode(ReviewDecision, r.value()).final for r in records] == [True]
    missing = await gateway.call("POST", "/v1/items/f-1/resolve", "lee", json=body)
    assert missing.status_code == 422, missing.text
