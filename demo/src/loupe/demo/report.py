"""The demo's end report: what the loop achieved against ground truth (pure, no I/O).

Inputs are the events read back from Kafka (review requests, decisions, resolved labels, conflicts,
dead letters) plus what only the demo knows: ground truth and the model's own predictions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loupe.schemas import (
    Action,
    ClassificationLabel,
    ConflictRecord,
    ReasonCode,
    ResolutionMethod,
    ResolvedLabel,
    ReviewDecision,
    ReviewRequest,
    Tier,
)

TIER_COST: Mapping[Tier, float] = {
    Tier.ANNOTATOR: 0.5,
    Tier.REVIEWER: 1.0,
    Tier.SENIOR: 2.0,
    Tier.LEAD: 4.0,
}
"""Relative cost of one reviewer-minute at each tier (a reviewer's minute costs 1 unit)."""


@dataclass(frozen=True)
class ReviewerQuality:
    """How one reviewer did, measured against ground truth and the final labels."""

    id: str
    tier: str
    votes: int
    labelled_votes: int
    accuracy: float | None
    """Share of labelled votes that match ground truth."""
    agreement_with_final: float | None
    seconds: float
    mean_seconds: float | None


@dataclass(frozen=True)
class Observed:
    """Everything the demo read back from the topics."""

    requests: list[ReviewRequest] = field(default_factory=list)
    decisions: list[ReviewDecision] = field(default_factory=list)
    resolved: list[ResolvedLabel] = field(default_factory=list)
    conflicts: list[ConflictRecord] = field(default_factory=list)
    dlq: int = 0


@dataclass(frozen=True)
class DemoReport:
    """The figures the demo prints at the end (and as JSON with ``--json``)."""

    items: int
    auto_accepted: int
    reviewed: int
    resolved: int
    unresolved: int
    dlq: int
    malformed_sent: int
    model_errors: int
    final_errors: int
    model_error_rate: float
    final_error_rate: float
    error_reduction: float | None
    review_fraction: float
    spot_checked: int
    spot_checks_reviewed: int
    reasons: dict[str, int]
    disagreement_rate: float
    conflicts: int
    escalations: int
    held_out_class: str
    held_out_items: int
    held_out_reviewed: int
    novel_caught: int
    novel_caught_rate: float
    familiar_flagged_novel: int
    held_out_final_correct: int
    review_votes: int
    review_seconds: float
    review_cost_units: float
    reviewers: list[ReviewerQuality]
    careless_reviewer: str | None
    elapsed_s: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (floats rounded for reading)."""
        data: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            if name == "reviewers":
                data[name] = [_rounded(quality.__dict__) for quality in value]
            elif isinstance(value, float):
                data[name] = round(value, 4)
            else:
                data[name] = value
        return data


def _rounded(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in values.items()}


def latest_labels(resolved: Iterable[ResolvedLabel]) -> dict[str, ResolvedLabel]:
    """The final label of each item: the highest revision wins (compacted-table semantics)."""
    latest: dict[str, ResolvedLabel] = {}
    for label in resolved:
        held = latest.get(label.item_id)
        if held is None or label.revision >= held.revision:
            latest[label.item_id] = label
    return latest


def class_of(label: object) -> str | None:
    """The class of a classification label, else None."""
    return label.label if isinstance(label, ClassificationLabel) else None


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def disagreement_rate(decisions: Iterable[ReviewDecision]) -> float:
    """Share of multi-vote tasks whose labelled votes were not unanimous."""
    labels_by_task: dict[str, list[str]] = defaultdict(list)
    for decision in decisions:
        name = class_of(decision.label)
        if name is not None and decision.action in (Action.APPROVE, Action.CORRECT):
            labels_by_task[decision.request_id].append(name)
    multi = [labels for labels in labels_by_task.values() if len(labels) >= 2]
    return _rate(sum(1 for labels in multi if len(set(labels)) > 1), len(multi))


def reviewer_quality(
    decisions: Iterable[ReviewDecision],
    truth: Mapping[str, str],
    final: Mapping[str, ResolvedLabel],
) -> list[ReviewerQuality]:
    """Per-reviewer accuracy against ground truth and agreement with the final labels."""
    by_reviewer: dict[str, list[ReviewDecision]] = defaultdict(list)
    for decision in decisions:
        by_reviewer[decision.reviewer.id].append(decision)
    qualities = []
    for reviewer_id, own in sorted(by_reviewer.items()):
        labelled = [(d.item_id, class_of(d.label)) for d in own if class_of(d.label) is not None]
        correct = sum(1 for item, name in labelled if truth.get(item) == name)
        judged = [(item, name) for item, name in labelled if item in final]
        agreed = sum(1 for item, name in judged if class_of(final[item].label) == name)
        seconds = sum(d.seconds_spent for d in own)
        qualities.append(
            ReviewerQuality(
                id=reviewer_id,
                tier=own[-1].reviewer.tier.value,
                votes=len(own),
                labelled_votes=len(labelled),
                accuracy=correct / len(labelled) if labelled else None,
                agreement_with_final=agreed / len(judged) if judged else None,
                seconds=seconds,
                mean_seconds=seconds / len(own) if own else None,
            )
        )
    return qualities


def least_accurate(qualities: Iterable[ReviewerQuality], min_votes: int = 5) -> str | None:
    """The reviewer with the lowest accuracy among those with enough labelled votes."""
    ranked = [q for q in qualities if q.accuracy is not None and q.labelled_votes >= min_votes]
    if not ranked:
        return None
    return min(ranked, key=lambda q: (q.accuracy, q.id)).id


def build_report(
    *,
    truth: Mapping[str, str],
    predicted: Mapping[str, str],
    held_out_class: str,
    observed: Observed,
    malformed_sent: int,
    elapsed_s: float,
) -> DemoReport:
    """Compute the demo's figures; every streamed item counts, unresolved ones as errors."""
    items = len(truth)
    final = latest_labels(r for r in observed.resolved if r.item_id in truth)
    auto_accepted = {
        r.item_id
        for r in observed.resolved
        if r.item_id in truth and r.method is ResolutionMethod.AUTO
    }
    requests = [r for r in observed.requests if r.item_id in truth]
    reviewed = {r.item_id for r in requests}
    reasons: dict[str, int] = defaultdict(int)
    flagged_novel: set[str] = set()
    for request in requests:
        for reason in request.reasons:
            reasons[reason.code.value] += 1
            if reason.code is ReasonCode.NOVEL:
                flagged_novel.add(request.item_id)

    model_errors = sum(1 for item, name in truth.items() if predicted.get(item) != name)
    final_errors = sum(
        1
        for item, name in truth.items()
        if item not in final or class_of(final[item].label) != name
    )
    held_out = {item for item, name in truth.items() if name == held_out_class}
    decisions = [d for d in observed.decisions if d.item_id in truth]
    decided_requests = {d.request_id for d in decisions}
    qualities = reviewer_quality(decisions, truth, final)
    seconds_by_tier = [(d.reviewer.tier, d.seconds_spent) for d in decisions]
    escalated = {r.request_id for r in requests if r.escalation_level > 0}
    model_error_rate = _rate(model_errors, items)
    final_error_rate = _rate(final_errors, items)
    return DemoReport(
        items=items,
        auto_accepted=len(auto_accepted),
        reviewed=len(reviewed),
        resolved=len(final),
        unresolved=items - len(final),
        dlq=observed.dlq,
        malformed_sent=malformed_sent,
        model_errors=model_errors,
        final_errors=final_errors,
        model_error_rate=model_error_rate,
        final_error_rate=final_error_rate,
        error_reduction=model_error_rate / final_error_rate if final_error_rate else None,
        review_fraction=_rate(len(reviewed), items),
        spot_checked=len({r.item_id for r in requests if r.spot_check}),
        spot_checks_reviewed=len(
            {r.item_id for r in requests if r.spot_check and r.request_id in decided_requests}
        ),
        reasons=dict(sorted(reasons.items())),
        disagreement_rate=disagreement_rate(decisions),
        conflicts=len({c.conflict_id for c in observed.conflicts if c.item_id in truth}),
        escalations=len(escalated),
        held_out_class=held_out_class,
        held_out_items=len(held_out),
        held_out_reviewed=len(held_out & reviewed),
        novel_caught=len(held_out & flagged_novel),
        novel_caught_rate=_rate(len(held_out & flagged_novel), len(held_out)),
        familiar_flagged_novel=len(flagged_novel - held_out),
        held_out_final_correct=sum(
            1 for item in held_out if item in final and class_of(final[item].label) == truth[item]
        ),
        review_votes=len(decisions),
        review_seconds=sum(seconds for _, seconds in seconds_by_tier),
        review_cost_units=sum(TIER_COST[tier] * seconds / 60 for tier, seconds in seconds_by_tier),
        reviewers=qualities,
        careless_reviewer=least_accurate(qualities),
        elapsed_s=elapsed_s,
    )


def render_text(report: DemoReport) -> str:
    """The report as a few readable lines for the terminal."""
    reduction = f"{report.error_reduction:.1f}x" if report.error_reduction else "∞ (no errors left)"
    lines = [
        f"Loupe demo report ({report.elapsed_s:.0f} s)",
        f"  items {report.items}: auto-accepted {report.auto_accepted}, sent to review "
        f"{report.reviewed} ({report.review_fraction:.1%}, incl. {report.spot_checked} spot "
        f"checks, {report.spot_checks_reviewed} of them reviewed), unresolved "
        f"{report.unresolved}; malformed sent {report.malformed_sent}, DLQ {report.dlq}",
        f"  error rate: model {report.model_error_rate:.2%} ({report.model_errors}) -> final "
        f"{report.final_error_rate:.2%} ({report.final_errors}), {reduction} fewer errors",
        f"  held-out class {report.held_out_class!r}: {report.held_out_items} items, "
        f"{report.novel_caught} flagged novel ({report.novel_caught_rate:.0%}), "
        f"{report.held_out_reviewed} reviewed, {report.held_out_final_correct} correct in the "
        f"end; familiar items flagged novel {report.familiar_flagged_novel}",
        f"  reasons: {', '.join(f'{k} {v}' for k, v in report.reasons.items()) or '-'}",
        f"  votes {report.review_votes}, disagreement {report.disagreement_rate:.1%}, conflicts "
        f"{report.conflicts}, escalations {report.escalations}",
        f"  review cost: {report.review_seconds / 60:.1f} reviewer-minutes (simulated), "
        f"{report.review_cost_units:.1f} cost units (reviewer minute = 1, senior 2, lead 4)",
        "  reviewers (accuracy vs ground truth, agreement with final label, votes):",
    ]
    for quality in report.reviewers:
        accuracy = f"{quality.accuracy:.0%}" if quality.accuracy is not None else "-"
        agreement = (
            f"{quality.agreement_with_final:.0%}"
            if quality.agreement_with_final is not None
            else "-"
        )
        flag = "  <- least accurate" if quality.id == report.careless_reviewer else ""
        lines.append(
            f"    {quality.id:<8} {quality.tier:<9} accuracy {accuracy:>4}  agreement "
            f"{agreement:>4}  votes {quality.votes}{flag}"
        )
    return "\n".join(lines)
