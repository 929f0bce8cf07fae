"""The one deduplication rule for review decisions, shared by every producer and consumer.

A decision is identified by (request, reviewer, idempotency key). The idempotency key alone is
not an identity: clients choose it, and two reviewers may send the same one (a client that uses
the task id as its key), as may one reviewer on two tasks once the gateway's replay record is
gone. The decision id alone is not either: any producer sets it. Consumers therefore dedupe on
``decision_identity``; the gateway publishes it as the ``decision_id``, so that the ids the API
shows and the identity agree (docs/architecture.md, Guarantees).

Identity says which deliveries are one decision; the lease fence says whether a decision may
count at all (``admit_by_fence``).
"""

from __future__ import annotations

import uuid

from loupe.schemas.events import ReviewDecision

MAX_FENCES = 64
"""Overlap slots whose highest token a reader keeps per item (the oldest goes first): more than
a round's tasks times their overlap in practice (a few of each). A revived lease on a slot that
was dropped counts, as every decision did before fencing."""

_NAMESPACE = uuid.UUID("6c0b1d2e-7f1a-4e59-9a57-2f3c5d1e0a11")


def decision_id_for(request_id: str, reviewer_id: str, idempotency_key: str) -> str:
    """The identity of a reviewer's decision on a request sent with an idempotency key (ids are
    printable, so the unit separator, 0x1F, keeps the three parts apart)."""
    return str(uuid.uuid5(_NAMESPACE, f"{request_id}\x1f{reviewer_id}\x1f{idempotency_key}"))


def decision_identity(decision: ReviewDecision) -> str:
    """What consumers dedupe a decision on: a replay has it, a distinct vote never shares it."""
    return decision_id_for(decision.request_id, decision.reviewer.id, decision.idempotency_key)


def admit_by_fence(fences: dict[str, int], decision: ReviewDecision) -> bool:
    """Whether a decision may count, by its lease fence; records its token in ``fences``.

    ``fences`` maps a task's overlap slot to the highest fencing token of a decision admitted
    on it (a reader keeps one map per item, at most ``MAX_FENCES`` slots). A decision made
    under a lower token than one already admitted on its slot was made under a lease that had
    ended and came back with an older Redis: it is stale. A higher token is a later holder of
    the slot and counts (the slot was free again: its earlier decision was made, or the lease
    released). A decision without a fence (a lead's call) always counts.
    """
    if decision.lease is None:
        return True
    slot = f"{decision.task_id}\x1f{decision.lease.slot}"
    highest = fences.pop(slot, 0)
    fences[slot] = max(highest, decision.lease.epoch)
    while len(fences) > MAX_FENCES:
        del fences[next(iter(fences))]
    return decision.lease.epoch >= highest
