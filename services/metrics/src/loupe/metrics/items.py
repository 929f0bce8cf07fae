"""Per-item review state and what each item contributes to the quality aggregates.

Item-level quality numbers (model error, spot-check samples, disagreement, reviewer agreement)
change when a later revision or a late event arrives. Each item therefore reports its whole
contribution as a ``Tally``; the aggregator subtracts the old tally and adds the new one, so the
totals stay exact under replays, duplicates and any arrival order.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from loupe.runtime.labels import AnyLabel, labels_agree
from loupe.schemas import Action, Outcome, label_classes

Tally = Counter[tuple[str, ...]]
"""(metric, *label values) → amount."""

OPINIONS = (Action.APPROVE, Action.CORRECT, Action.REJECT)
"""Actions that state a label (or that there is none); skip and escalate do not."""

REJECTED_CLASS = "_rejected"


@dataclass(frozen=True)
class DecisionRecord:
    """The part of a reviewer's decision the quality metrics need."""

    reviewer: str
    action: Action
    label: AnyLabel | None
    request_id: str


@dataclass(frozen=True)
class VoteRecord:
    """One vote as listed in a resolved label's provenance."""

    action: Action
    label: AnyLabel | None


@dataclass
class ItemState:
    """Everything known about one item that needed (or got) human eyes."""

    project: str
    model: str = "unknown"
    prediction: AnyLabel | None = None
    review_requested: bool = False
    """Any first-level review request (routed for review or spot check)."""
    routed_to_review: bool = False
    """Routed to review before acceptance (not a spot check)."""
    spot_check: bool = False
    spot_overlap: int = 1
    spot_policy_version: int = 0
    escalated: bool = False
    confirmed_at_revision_1: bool = False
    """The resolver recorded a resolution at revision 1 (for a spot check: model confirmed)."""
    conflict: bool = False
    revision: int = 0
    last_label: AnyLabel | None = None
    human_final: AnyLabel | None = None
    human_outcome: Outcome | None = None
    votes: tuple[VoteRecord, ...] = ()
    decisions: dict[str, DecisionRecord] = field(default_factory=dict)
    """By ``decision_identity``: a redelivery replaces nothing, a distinct vote never collides."""
    fences: dict[str, int] = field(default_factory=dict)
    """Highest lease token admitted per overlap slot (``loupe.schemas.admit_by_fence``)."""
    request_ids: set[str] = field(default_factory=set)
    conflict_ids: set[str] = field(default_factory=set)
    in_window: bool = False

    @property
    def resolved_by_people(self) -> bool:
        """Whether a person-made final label (any method but auto) is known."""
        return self.human_outcome is not None

    def spot_check_outcome(self, min_iou: float) -> bool | None:
        """True when the spot check found a model error, False when it confirmed, None pending.

        A person-made revision decides; without one, the item is confirmed by the resolver's
        revision-1 resolution audit record, or once the required number of reviewers all stated
        the model's label.
        """
        if not self.spot_check or self.prediction is None:
            return None
        if self.resolved_by_people:
            return not labels_agree(self.prediction, self.human_final, min_iou)
        if self.confirmed_at_revision_1:
            return False
        opinions = [d for d in self.decisions.values() if d.action in OPINIONS]
        if len(opinions) < self.spot_overlap:
            return None
        if all(
            d.action is not Action.REJECT and labels_agree(d.label, self.prediction, min_iou)
            for d in opinions
        ):
            return False
        return None

    def final_for_agreement(self, min_iou: float) -> tuple[bool, AnyLabel | None]:
        """(known, label) the reviewers are scored against; label None means rejected."""
        if self.resolved_by_people:
            return True, self.human_final
        if self.spot_check_outcome(min_iou) is False:
            return True, self.prediction
        return False, None

    def disagreed(self, min_iou: float) -> bool:
        """Whether the votes on this item disagreed (a conflict record or differing votes)."""
        if self.conflict:
            return True
        labels = [v.label if v.action is not Action.REJECT else None for v in self.opinion_votes]
        return any(not labels_agree(labels[0], other, min_iou) for other in labels[1:])

    @property
    def opinion_votes(self) -> list[VoteRecord]:
        """Votes that state a label or a rejection."""
        return [v for v in self.votes if v.action in OPINIONS]

    @property
    def multi_vote(self) -> bool:
        """Whether the final resolution counted two or more opinions."""
        return self.resolved_by_people and len(self.opinion_votes) >= 2

    def classes(self) -> list[str]:
        """Classes the item is reported under: the final label's, else the prediction's."""
        label = self.human_final or self.prediction
        if label is None:
            return [REJECTED_CLASS]
        found = sorted(label_classes(label))
        return found or [REJECTED_CLASS]

    def tally(self, min_iou: float) -> Tally:
        """This item's whole contribution to the item-level aggregates."""
        out: Tally = Counter()
        project, model = self.project, self.model
        if self.review_requested:
            out["review_items", project] += 1
            if self.escalated:
                out["escalated_items", project] += 1
        if self.routed_to_review and self.resolved_by_people and self.prediction is not None:
            out["reviewed_items", project, model] += 1
            wrong = not labels_agree(self.prediction, self.human_final, min_iou)
            out["model_errors", project, model] += int(wrong)
        spot = self.spot_check_outcome(min_iou)
        if spot is not None:
            version = str(self.spot_policy_version)
            out["spot_samples", project, model, version] += 1
            out["spot_errors", project, model, version] += int(spot)
        if self.multi_vote:
            disagreed = self.disagreed(min_iou)
            for name in self.classes():
                out["multi_vote_items", project, name] += 1
                out["disagreed_items", project, name] += int(disagreed)
        known, final = self.final_for_agreement(min_iou)
        if known:
            for decision in self.decisions.values():
                if decision.action not in OPINIONS:
                    continue
                stated = None if decision.action is Action.REJECT else decision.label
                out["reviewer_scored", decision.reviewer] += 1
                out["reviewer_agreed", decision.reviewer] += int(
                    labels_agree(stated, final, min_iou)
                )
        return +out
