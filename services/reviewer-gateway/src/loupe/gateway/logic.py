"""Pure decision logic of the gateway: queue scores, roles, label checks (no I/O)."""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum

from loupe.gateway.diff import diff_labels
from loupe.schemas import (
    Action,
    BoxesLabel,
    ClassificationLabel,
    Outcome,
    ResolvedLabel,
    ReviewRequest,
    Tier,
    TracksLabel,
    label_classes,
)

AnyLabel = ClassificationLabel | BoxesLabel | TracksLabel

_AGE_SPAN = 10**13
"""Epoch milliseconds stay below this until the year 2286, so score = rank * span + age."""


class Role(StrEnum):
    """What a user may do; tiers gate queues, roles gate endpoints."""

    ANNOTATOR = "annotator"
    REVIEWER = "reviewer"
    SENIOR = "senior"
    LEAD = "lead"
    ADMIN = "admin"


WORKERS = frozenset({Role.ANNOTATOR, Role.REVIEWER, Role.SENIOR, Role.LEAD})
SENIORS = frozenset({Role.SENIOR, Role.LEAD})
LEADS = frozenset({Role.LEAD})
ADMINS = frozenset({Role.ADMIN})
EVERYONE = frozenset(Role)

VOTE_ACTIONS = frozenset({Action.APPROVE, Action.CORRECT, Action.REJECT, Action.ESCALATE})
"""Actions that use up one of the task's overlap slots (skip hands the slot back)."""


def default_tier(role: Role) -> Tier | None:
    """The tier a role works at unless configured otherwise (admins do not review)."""
    return None if role is Role.ADMIN else Tier(role.value)


def queue_score(priority: int, created_ms: int) -> int:
    """Sorted-set score: higher priority first, then older first (exact in a double)."""
    return (100 - priority) * _AGE_SPAN + max(0, min(created_ms, _AGE_SPAN - 1))


class LabelError(ValueError):
    """A decision's label does not fit the task."""


def check_label(
    task_type: str, allowed_classes: Collection[str], action: Action, label: AnyLabel | None
) -> AnyLabel | None:
    """Validate a decision's label against the task; return the label to publish (or None)."""
    needs_label = action in (Action.APPROVE, Action.CORRECT)
    if needs_label and label is None:
        raise LabelError(f"action {action.value!r} needs a label")
    if label is None:
        return None
    if not needs_label and action is not Action.ESCALATE:
        return None
    if label.kind != task_type:
        raise LabelError(f"label kind {label.kind!r} does not match task type {task_type!r}")
    unknown = sorted(label_classes(label) - set(allowed_classes))
    if unknown:
        shown = ", ".join(list(allowed_classes)[:50])
        raise LabelError(f"unknown class(es) {', '.join(map(repr, unknown))}; allowed: {shown}")
    return label


def resolution_closes(resolved: ResolvedLabel, request: ReviewRequest) -> bool:
    """Whether a resolved label settles a review request (so its task leaves the queues).

    Auto-accepted revisions never do: the router names the spot-check request in the automatic
    label's provenance, yet that review exists precisely to double-check the automatic label.
    """
    if not resolved.person_made:
        return False
    if request.request_id in resolved.provenance.request_ids:
        return True
    return resolved.resolved_at >= request.created_at


def vote_agrees(action: Action, label: AnyLabel | None, resolved: ResolvedLabel) -> bool | None:
    """Whether a vote agrees with the final outcome (None: the vote cannot be scored)."""
    return vote_agrees_with(action, label, resolved.outcome, resolved.label)


def vote_agrees_with(
    action: Action, label: AnyLabel | None, outcome: Outcome, final: AnyLabel | None
) -> bool | None:
    """``vote_agrees`` on the two parts of a resolved label it reads (the rebuild scores
    without validating whole labels)."""
    if action is Action.REJECT:
        return outcome is Outcome.REJECTED
    if action not in (Action.APPROVE, Action.CORRECT) or label is None:
        return None
    if final is None:
        return False
    if label.kind != final.kind:
        return False
    summary = diff_labels(label, final)["summary"]
    return not (
        summary["relabelled"]
        or summary["added"]
        or summary["removed"]
        or summary["identity_switches"]
    )


__all__ = [
    "ADMINS",
    "EVERYONE",
    "LEADS",
    "SENIORS",
    "VOTE_ACTIONS",
    "WORKERS",
    "LabelError",
    "Role",
    "check_label",
    "default_tier",
    "queue_score",
    "resolution_closes",
    "vote_agrees",
    "vote_agrees_with",
]


def next_policy_version(current: int, last_attempted: int) -> int:
    """The version a new policy change publishes.

    Above both the newest version stored and the newest ever attempted: a publish that timed
    out may still be acknowledged by Kafka later, and a retry must then be newer than it (policy
    consumers ignore versions they already have).
    """
    return max(current, last_attempted) + 1
