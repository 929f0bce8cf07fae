"""Audit records the router writes: a policy version it started applying (pure)."""

from __future__ import annotations

from datetime import datetime

from loupe.router.encoding import SERVICE
from loupe.schemas import Actor, AuditAction, AuditEvent, PolicyUpdate


def policy_applied(
    update: PolicyUpdate, previous_version: int | None, instance_id: str, at: datetime
) -> AuditEvent:
    """One router instance now routes ``update.project`` with ``update.version``.

    The event id is deterministic per instance and version, so a replayed batch cannot record
    the same change twice under different ids.
    """
    return AuditEvent(
        event_id=f"{SERVICE}:{instance_id}:{update.project}:v{update.version}",
        at=at,
        actor=Actor(id=f"service:{SERVICE}", role="service"),
        action=AuditAction.POLICY_CHANGE,
        project=update.project,
        reason=f"applied policy v{update.version} by {update.changed_by.id}: {update.reason}"[:512],
        details={
            "instance": instance_id,
            "version": update.version,
            "previous_version": previous_version,
            "changed_by": update.changed_by.id,
        },
    )
