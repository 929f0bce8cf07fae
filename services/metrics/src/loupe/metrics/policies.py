"""Follow projects' policies (``control.policy``) and build the controller's audited updates.

The controller only ever changes two knobs: ``review.spot_check_rate`` and
``confidence.per_model[<model name>]``. Evidence restarts whenever those knobs change (the
"knobs version"), and a model's *floor* (the threshold the controller had to raise from) is kept
until a person changes the knobs. Floors are rebuilt on restart from the controller's own audit
events, so the whole controller state is recoverable from Kafka.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from loupe.metrics.controller import Adjustment, Direction
from loupe.schemas import Actor, AuditAction, AuditEvent, PolicyUpdate, ProjectPolicy

CONTROLLER_ACTOR = Actor(id="service:metrics", role="service")
AUDIT_KIND = "adaptive_review"


def _knobs(policy: ProjectPolicy) -> tuple[float, float, tuple[tuple[str, float], ...]]:
    confidence = policy.confidence
    return (
        policy.review.spot_check_rate,
        confidence.default,
        tuple(sorted(confidence.per_model.items())),
    )


@dataclass
class ProjectEntry:
    """The latest policy of one project and when its knobs last changed."""

    update: PolicyUpdate
    knobs_version: int
    human_change_at: datetime | None


@dataclass
class PolicyBook:
    """Latest policy per project plus the controller's memory (floors)."""

    projects: dict[str, ProjectEntry] = field(default_factory=dict)
    floors: dict[tuple[str, str], tuple[float, datetime]] = field(default_factory=dict)

    def on_update(self, update: PolicyUpdate) -> bool:
        """Apply a policy version newer than the one held; return whether it was applied."""
        entry = self.projects.get(update.project)
        if entry is not None and update.version <= entry.update.version:
            return False
        by_person = update.changed_by.id != CONTROLLER_ACTOR.id
        if entry is None:
            self.projects[update.project] = ProjectEntry(
                update, update.version, update.at if by_person else None
            )
            return True
        changed = _knobs(entry.update.policy) != _knobs(update.policy)
        entry.knobs_version = update.version if changed else entry.knobs_version
        if changed and by_person:
            entry.human_change_at = update.at
        entry.update = update
        return True

    def on_audit(self, event: AuditEvent) -> None:
        """Remember the controller's raises (from its own audit events)."""
        details = event.details
        if (
            event.actor.id != CONTROLLER_ACTOR.id
            or event.project is None
            or details.get("kind") != AUDIT_KIND
            or details.get("direction") != Direction.RAISE.value
        ):
            return
        raised_from = details.get("raised_from")
        if not isinstance(raised_from, dict):
            return
        for model, threshold in raised_from.items():
            key = (event.project, str(model))
            known = self.floors.get(key)
            if isinstance(threshold, int | float) and (known is None or known[1] <= event.at):
                self.floors[key] = (float(threshold), event.at)

    def floor(self, project: str, model: str) -> float | None:
        """The model's floor, unless a person changed the knobs after it was set."""
        found = self.floors.get((project, model))
        entry = self.projects.get(project)
        if found is None or entry is None:
            return None
        human = entry.human_change_at
        return found[0] if human is None or found[1] > human else None

    def threshold(self, project: str, model: str) -> float:
        """The confidence threshold the controller manages for a model."""
        confidence = self.projects[project].update.policy.confidence
        return confidence.per_model.get(model, confidence.default)


def adjusted(
    current: PolicyUpdate, adjustment: Adjustment, at: datetime
) -> tuple[PolicyUpdate, AuditEvent]:
    """The next policy version with the adjustment applied, and its audit record."""
    policy = current.policy
    per_model = dict(policy.confidence.per_model)
    for model, (_, new) in adjustment.thresholds.items():
        per_model[model] = new
    new_policy = policy.model_copy(
        update={
            "review": policy.review.model_copy(
                update={"spot_check_rate": adjustment.spot_check_rate[1]}
            ),
            "confidence": policy.confidence.model_copy(update={"per_model": per_model}),
        }
    )
    version = current.version + 1
    reason = adjustment.reason[:512]
    update = PolicyUpdate(
        project=current.project,
        version=version,
        policy=ProjectPolicy.model_validate(new_policy.model_dump()),
        changed_by=CONTROLLER_ACTOR,
        reason=reason,
        at=at,
    )
    audit = AuditEvent(
        event_id=f"adaptive:{current.project}:{version}",
        at=at,
        actor=CONTROLLER_ACTOR,
        action=AuditAction.POLICY_CHANGE,
        project=current.project,
        reason=reason,
        details={
            "kind": AUDIT_KIND,
            "direction": adjustment.direction.value,
            "from_version": current.version,
            "to_version": version,
            "spot_check_rate": list(adjustment.spot_check_rate),
            "thresholds": {name: list(pair) for name, pair in adjustment.thresholds.items()},
            "raised_from": dict(adjustment.raised_from),
        },
    )
    return update, audit
