"""Building the gateway's audit events (pure)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from loupe.gateway.ids import new_id
from loupe.gateway.users import User
from loupe.schemas import Actor, AuditAction, AuditEvent, utcnow


def actor_of(user: User) -> Actor:
    """The audit actor for a person."""
    return Actor(id=user.id, role=user.role.value)


SERVICE_ACTOR = Actor(id="service:gateway", role="service")


def audit_event(
    actor: Actor,
    action: AuditAction,
    *,
    item_id: str | None = None,
    project: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """One append-only audit record."""
    return AuditEvent(
        event_id=new_id(),
        at=at or utcnow(),
        actor=actor,
        action=action,
        item_id=item_id,
        project=project,
        reason=reason[:512] if reason else None,
        details=details or {},
    )


def comment_view(event: dict[str, Any]) -> dict[str, Any]:
    """A comment as the API shows it, from its audit event JSON."""
    return {
        "comment_id": event["event_id"],
        "author": event["actor"],
        "text": event["details"].get("text", ""),
        "at": event["at"],
    }
