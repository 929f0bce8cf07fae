"""RebuildingError the Redis working set from Kafka history (pure planning, no I/O).

Open tasks are the review requests not yet decided to their overlap and not settled by a
resolved label; everything else is restored as closed so replays stay idempotent.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from loupe.gateway.logic import VOTE_ACTIONS, resolution_closes
from loupe.schemas import Action, ResolvedLabel, ReviewDecision, ReviewRequest


@dataclass
class TaskState:
    """What the history says about one task."""

    request: ReviewRequest
    raw: bytes
    voters: set[str] = field(default_factory=set)
    skippers: set[str] = field(default_factory=set)
    status: str = "open"

    @property
    def done(self) -> int:
        """Distinct reviewers whose vote counted on this task."""
        return len(self.voters)


@dataclass
class RebuildPlan:
    """The working set to write back into Redis."""

    tasks: dict[str, TaskState]
    votes: dict[str, dict[str, ReviewDecision]]
    """item_id -> decision_id -> counted vote."""
    latest_resolved: dict[str, tuple[ResolvedLabel, bytes]]

    def open_tasks(self) -> list[TaskState]:
        """Tasks that still need votes."""
        return [task for task in self.tasks.values() if task.status == "open"]


def plan_rebuild(
    requests: list[tuple[ReviewRequest, bytes]],
    decisions: list[ReviewDecision],
    resolved: list[tuple[ResolvedLabel, bytes]],
) -> RebuildPlan:
    """Replay requests, decisions and resolutions (each in topic order) into task states."""
    tasks: dict[str, TaskState] = {}
    for request, raw in requests:
        tasks.setdefault(request.request_id, TaskState(request, raw))
    votes: dict[str, dict[str, ReviewDecision]] = defaultdict(dict)
    seen: set[str] = set()
    final_items: set[str] = set()
    for decision in decisions:
        if decision.decision_id in seen:
            continue
        seen.add(decision.decision_id)
        if decision.final:
            final_items.add(decision.item_id)
        task = tasks.get(decision.task_id)
        if task is None:
            continue
        reviewer = decision.reviewer.id
        if decision.action is Action.SKIP:
            task.skippers.add(reviewer)
        elif decision.action in VOTE_ACTIONS and reviewer not in task.voters:
            task.voters.add(reviewer)
            votes[decision.item_id][decision.decision_id] = decision
    latest: dict[str, tuple[ResolvedLabel, bytes]] = {}
    by_item: dict[str, list[ResolvedLabel]] = defaultdict(list)
    for label, raw in resolved:
        by_item[label.item_id].append(label)
        current = latest.get(label.item_id)
        if current is None or label.revision >= current[0].revision:
            latest[label.item_id] = (label, raw)
    for task in tasks.values():
        request = task.request
        if task.done >= request.required_overlap:
            task.status = "complete"
        if request.item_id in final_items:
            task.status = "closed"
        if any(resolution_closes(label, request) for label in by_item.get(request.item_id, [])):
            task.status = "resolved"
    return RebuildPlan(tasks, dict(votes), latest)
