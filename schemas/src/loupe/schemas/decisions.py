"""The one deduplication rule for review decisions, shared by every producer and consumer.

A decision is identified by (request, reviewer, idempotency key). The idempotency key alone is
not an identity: clients choose it, and two reviewers may send the same one (a client that uses
the task id as its key), as may one reviewer on two tasks once the gateway's replay record is
gone. The decision id alone is not either: any producer sets it. Consumers therefore dedupe on
``decision_identity``; the gateway publishes it as the ``decision_id``, so that the ids the API
shows and the identity agree (docs/architecture.md, Guarantees).
"""

from __future__ import annotations

import uuid

from loupe.schemas.events import ReviewDecision

_NAMESPACE = uuid.UUID("6c0b1d2e-7f1a-4e59-9a57-2f3c5d1e0a11")


def decision_id_for(request_id: str, reviewer_id: str, idempotency_key: str) -> str:
    """The identity of a reviewer's decision on a request sent with an idempotency key (ids are
    printable, so the unit separator, 0x1F, keeps the three parts apart)."""
    return str(uuid.uuid5(_NAMESPACE, f"{request_id}\x1f{reviewer_id}\x1f{idempotency_key}"))


def decision_identity(decision: ReviewDecision) -> str:
    """What consumers dedupe a decision on: a replay has it, a distinct vote never shares it."""
    return decision_id_for(decision.request_id, decision.reviewer.id, decision.idempotency_key)
