"""The audit record of a policy version the router started applying."""

from __future__ import annotations

from datetime import UTC, datetime

from harness import samples
from loupe.router.audit import policy_applied
from loupe.schemas import Actor, AuditAction, AuditEvent, PolicyUpdate, decode

AT = datetime(2026, 11, 27, tzinfo=UTC)


def test_policy_applied_event_is_deterministic_and_valid() -> None:
    update = PolicyUpdate(
        project="demo",
        version=4,
        policy=samples.policy(),
        changed_by=Actor(id="lea", role="lead"),
        reason="tighten",
        at=AT,
    )
    event = policy_applied(update, 3, "r1", AT)
    assert event == policy_applied(update, 3, "r1", AT)
    assert event.event_id == "router:r1:demo:v4"
    assert event.action is AuditAction.POLICY_CHANGE and event.actor.id == "service:router"
    assert event.details == {
        "instance": "r1",
        "version": 4,
        "previous_version": 3,
        "changed_by": "lea",
    }
    assert decode(AuditEvent, event.to_json_bytes()) == event
