"""The routing policy: which predictions are auto-accepted and which need review (pure).

``decide`` turns a valid prediction, the project's policy and what the router observed about it
(novelty, rare classes) into a ``Decision``. Nothing here does I/O or keeps state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import NamedTuple

from loupe.runtime.labels import LabelObject, label_objects, model_confidence
from loupe.schemas import (
    BoxesLabel,
    ClassificationLabel,
    ConfidencePolicy,
    ModelRef,
    Prediction,
    ProjectPolicy,
    ReasonCode,
    ReviewReason,
    Tier,
    TracksLabel,
    label_classes,
)

SAFETY_PRIORITY = 100
"""Priority of safety-critical classes whose rule sets none: they go first."""
SAFETY_MIN_TIER = Tier.SENIOR
SAFETY_MIN_OVERLAP = 2
MAX_SKILLS = 16
_SPOT_CHECK_SPACE = float(2**64)


class Observations(NamedTuple):
    """What the router's memory says about a prediction (see ``loupe.router.engine``)."""

    novelty: tuple[str, ...] = ()
    """One detail per novelty finding (unseen model version, task type, far embedding)."""
    rare_classes: tuple[tuple[str, float], ...] = ()
    """(class, observed share) of each predicted class below the rare-class floor."""
    state_limits: tuple[str, ...] = ()
    """One detail per cap of the policy's ``state_limits`` the prediction would exceed."""


class ReviewPlan(NamedTuple):
    """Why and how an item is to be reviewed."""

    reasons: tuple[ReviewReason, ...]
    priority: int
    tier: Tier
    overlap: int
    skills: tuple[str, ...]
    safety_critical: bool
    spot_check: bool


class Decision(NamedTuple):
    """Auto-accept, review, or both (a spot check)."""

    auto_accept: bool
    confidence: float | None
    review: ReviewPlan | None


def threshold_for(confidence: ConfidencePolicy, model: ModelRef, class_name: str) -> float:
    """The most specific threshold: class, then model version, then model, then default."""
    if class_name in confidence.per_class:
        return confidence.per_class[class_name]
    qualified = model.qualified
    if qualified in confidence.per_model_version:
        return confidence.per_model_version[qualified]
    if model.name in confidence.per_model:
        return confidence.per_model[model.name]
    return confidence.default


def spot_check_selected(item_id: str, salt: str, rate: float) -> bool:
    """Deterministic sample: the same item id and salt are always (or never) picked."""
    if rate <= 0.0:
        return False
    if rate >= 1.0:
        return True
    digest = hashlib.blake2b(f"{salt}\x00{item_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SPOT_CHECK_SPACE < rate


def _classification_check(
    label: ClassificationLabel, model: ModelRef, policy: ConfidencePolicy
) -> tuple[list[ReviewReason], float | None]:
    top = model_confidence(label)
    if top is None:
        return [ReviewReason(code=ReasonCode.LOW_CONFIDENCE, detail="no class scores")], None
    reasons: list[ReviewReason] = []
    threshold = threshold_for(policy, model, label.label)
    if top < threshold:
        reasons.append(
            ReviewReason(
                code=ReasonCode.LOW_CONFIDENCE,
                detail=f"score {top:.4g} of {label.label!r} below threshold {threshold:.4g}",
            )
        )
    if policy.margin is not None and len(label.scores) > 1:
        others = dict(label.scores)
        del others[label.label]
        second = max(others.values())
        margin = top - second
        if margin < policy.margin:
            runner_up = next(name for name, score in others.items() if score == second)
            reasons.append(
                ReviewReason(
                    code=ReasonCode.LOW_MARGIN,
                    detail=f"margin {margin:.4g} over {runner_up!r} below {policy.margin:.4g}",
                )
            )
    return reasons, top


def _objects_check(
    label: BoxesLabel | TracksLabel, model: ModelRef, policy: ConfidencePolicy
) -> tuple[list[ReviewReason], float | None]:
    """Per object of ``label_objects``: below the strictest threshold of its classes, or
    unscored (unknown counts as low); more than ``max_low_score_objects`` of them is a reason."""
    objects = label_objects(label)
    low: list[tuple[LabelObject, str]] = []
    for obj in objects:
        threshold, strictest = max((threshold_for(policy, model, c), c) for c in obj.classes)
        if obj.score is None or obj.score < threshold:
            low.append((obj, strictest))
    confidence = model_confidence(label)
    if len(low) <= policy.max_low_score_objects:
        return [], confidence
    worst, worst_class = min(low, key=lambda o: -1.0 if o[0].score is None else o[0].score)
    worst_score = "no score" if worst.score is None else f"{worst.score:.4g}"
    noun = "boxes" if isinstance(label, BoxesLabel) else "tracks"
    detail = (
        f"{len(low)} of {len(objects)} {noun} below threshold (allowed "
        f"{policy.max_low_score_objects}); lowest {worst.name} {worst_class!r}: {worst_score}"
    )
    return [ReviewReason(code=ReasonCode.LOW_CONFIDENCE, detail=detail)], confidence


def confidence_reasons(
    prediction: Prediction, policy: ConfidencePolicy
) -> tuple[list[ReviewReason], float | None]:
    """Low-confidence and low-margin reasons, and the confidence an auto-accept would carry
    (``loupe.runtime.labels.model_confidence``, the number the gateway shows too)."""
    label = prediction.label
    if isinstance(label, ClassificationLabel):
        return _classification_check(label, prediction.model, policy)
    return _objects_check(label, prediction.model, policy)


def schema_reason(prediction: Prediction, policy: ProjectPolicy) -> ReviewReason | None:
    """``schema_changed`` when the model used other label definitions than the current ones."""
    used, current = prediction.label_schema, policy.label_schema
    if used.id == current.id and used.version == current.version:
        return None
    return ReviewReason(
        code=ReasonCode.SCHEMA_CHANGED,
        detail=f"label schema {used.id} v{used.version}, current {current.id} v{current.version}",
    )


def _requirements(
    classes: Iterable[str], policy: ProjectPolicy, reasons: list[ReviewReason]
) -> tuple[int, Tier, int, tuple[str, ...], bool]:
    review = policy.review
    priority = max(review.reason_priority.get(r.code.value, 0) for r in reasons)
    tier, overlap = review.default_tier, review.default_overlap
    skills: set[str] = set()
    safety = False
    for name in classes:
        rule = policy.classes.get(name)
        if rule is None:
            continue
        safety = safety or rule.safety_critical
        rule_priority = rule.priority
        if rule_priority is None and rule.safety_critical:
            rule_priority = SAFETY_PRIORITY
        rule_tier = rule.tier or (SAFETY_MIN_TIER if rule.safety_critical else None)
        rule_overlap = rule.overlap or (SAFETY_MIN_OVERLAP if rule.safety_critical else None)
        if rule_priority is not None:
            priority = max(priority, rule_priority)
        if rule_tier is not None and rule_tier.rank > tier.rank:
            tier = rule_tier
        if rule_overlap is not None:
            overlap = max(overlap, rule_overlap)
        skills.update(rule.skills)
    return min(priority, 100), tier, overlap, tuple(sorted(skills)[:MAX_SKILLS]), safety


def _merge_by_code(reasons: list[ReviewReason]) -> list[ReviewReason]:
    """One reason per code (details joined), in order of first appearance."""
    merged: dict[ReasonCode, list[str]] = {}
    for reason in reasons:
        merged.setdefault(reason.code, []).append(reason.detail)
    return [
        ReviewReason(code=code, detail="; ".join(d for d in details if d)[:512])
        for code, details in merged.items()
    ]


def decide(prediction: Prediction, policy: ProjectPolicy, observed: Observations) -> Decision:
    """Route one valid prediction: auto-accept, review, or auto-accept plus spot check."""
    reasons, confidence = confidence_reasons(prediction, policy.confidence)
    if observed.novelty:
        reasons.extend(ReviewReason(code=ReasonCode.NOVEL, detail=d) for d in observed.novelty)
    if observed.rare_classes:
        floor = policy.review.rare_class_floor
        reasons.extend(
            ReviewReason(
                code=ReasonCode.RARE_CLASS,
                detail=f"{name!r} is {share:.3%} of predictions, floor {floor:.3%}",
            )
            for name, share in observed.rare_classes
        )
    reasons.extend(
        ReviewReason(code=ReasonCode.STATE_LIMIT, detail=d) for d in observed.state_limits
    )
    changed = schema_reason(prediction, policy)
    if changed is not None:
        reasons.append(changed)
    spot_check = False
    if not reasons:
        review = policy.review
        rate = review.spot_check_rate
        if not spot_check_selected(prediction.item_id, review.spot_check_salt, rate):
            return Decision(auto_accept=True, confidence=confidence, review=None)
        spot_check = True
        reasons.append(
            ReviewReason(
                code=ReasonCode.SPOT_CHECK, detail=f"sampled at {review.spot_check_rate:.2%}"
            )
        )
    merged = _merge_by_code(reasons)
    priority, tier, overlap, skills, safety = _requirements(
        sorted(label_classes(prediction.label)), policy, merged
    )
    plan = ReviewPlan(tuple(merged), priority, tier, overlap, skills, safety, spot_check)
    return Decision(auto_accept=spot_check, confidence=confidence, review=plan)
