"""The resolver's consensus and the metrics' disagreement give the same answer on a shared corpus.

For each pair of box or track labels in ``tests.harness.label_pairs``, two reviewers state them
on one item: the resolver records a conflict exactly when the metrics service counts the votes
as disagreeing, and both match the expected answer (issue 11, point 5).
"""

from __future__ import annotations

import pytest
from tests.harness.label_pairs import MIN_IOU, PAIRS, Pair, boxes, tracks

from loupe.metrics.items import ItemState as MetricsItem
from loupe.metrics.items import VoteRecord
from loupe.resolver import simulate
from loupe.resolver.engine import Engine
from loupe.schemas import Action, Label, ReviewDecision, ReviewRequest
from loupe.schemas.policy import ConsolidationMethod

CLASSES = ["cat", "dog"]


def _decision(req: ReviewRequest, reviewer: str, label: Label | None, seq: int) -> ReviewDecision:
    action = Action.REJECT if label is None else Action.CORRECT
    return simulate.decision(req, reviewer, label=label, action=action, seq=seq)


def resolver_disagrees(kind: str, pair: Pair) -> bool:
    """Whether the resolver records a conflict when two reviewers state the pair."""
    model = boxes(("cat", 10)) if kind == "bbox" else tracks({0: [("t", "cat", 10)]})
    req = simulate.request("item", model, CLASSES, overlap=2, method=ConsolidationMethod.MAJORITY)
    engine = Engine()
    state, _ = engine.on_request(None, req)
    conflicts = []
    for seq, (reviewer, label) in enumerate((("ann", pair.a), ("bob", pair.b))):
        state, effects = engine.on_decision(state, _decision(req, reviewer, label, seq))
        conflicts += effects.conflicts
    return bool(conflicts)


def metrics_disagrees(pair: Pair) -> bool:
    """Whether the metrics service counts the two votes as disagreeing."""
    votes = tuple(
        VoteRecord(action=Action.REJECT if label is None else Action.CORRECT, label=label)
        for label in (pair.a, pair.b)
    )
    return MetricsItem(project="sim", votes=votes).disagreed(MIN_IOU)


@pytest.mark.parametrize(("kind", "pair"), PAIRS, ids=[f"{k}: {p.name}" for k, p in PAIRS])
def test_resolver_and_metrics_agree_on_the_corpus(kind: str, pair: Pair) -> None:
    answers = {
        "resolver": resolver_disagrees(kind, pair),
        "metrics": metrics_disagrees(pair),
    }
    assert answers == {"resolver": not pair.agree, "metrics": not pair.agree}
