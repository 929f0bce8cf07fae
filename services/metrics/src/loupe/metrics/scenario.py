"""A scripted run with known outcomes: the events of N predictions and the numbers they imply.

Used to check the service end to end (``loupe metrics scenario`` publishes it to a deployment;
the tests feed it to the aggregate and to a real broker). The expected numbers are counted here
directly from the script, independently of the aggregation code.

Item ``i``: the model predicts ``CLASSES[i % 3]`` and is wrong when ``i % 7 == 0``. By ``i % 10``:
0-5 auto-accepted, 6-8 routed to review by two reviewers (overlap 2), 9 auto-accepted and spot
checked by one reviewer (a correction publishes revision 2). Reviewer ``r5`` is second reviewer on
items with ``i % 30 == 6`` and gets every other one of those wrong; other second
reviewers are wrong when ``i % 40 == 6``. A wrong second vote is a disagreement: a conflict, an
escalation to senior ``s1`` who states the truth, and a weighted resolution over three votes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from loupe.schemas import (
    Action,
    Actor,
    AuditAction,
    AuditEvent,
    ClassificationLabel,
    ConflictRecord,
    DeadLetter,
    Disagreement,
    ErrorKind,
    Event,
    LabelSchema,
    LabelSchemaRef,
    ModelRef,
    PolicyUpdate,
    Prediction,
    ProjectPolicy,
    Provenance,
    ReasonCode,
    Resolution,
    ResolutionMethod,
    ResolvedLabel,
    ReviewDecision,
    ReviewerRef,
    ReviewReason,
    ReviewRequest,
    SourceRef,
    TaskType,
    Tier,
    Vote,
)
from loupe.schemas.topics import (
    AUDIT,
    CONTROL_POLICY,
    LABELS_CONFLICTS,
    LABELS_RESOLVED,
    PREDICTIONS,
    PREDICTIONS_DLQ,
    REVIEW_DECISIONS,
    REVIEW_REQUESTS,
    TopicSpec,
)

PROJECT = "scripted"
MODEL = "clf"
CLASSES = ("cat", "dog", "fox")
POOL = ("r1", "r2", "r3", "r4")
OUTLIER = "r5"
SENIOR = "s1"
START = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
RESOLUTION_DELAY = timedelta(minutes=10)

Record = tuple[TopicSpec, str, Event]
"""(topic, key, event)."""


@dataclass
class Expected:
    """The numbers the script implies."""

    predictions: int = 0
    routed: Counter[str] = field(default_factory=Counter)
    dead_letters: int = 0
    requests_by_tier: Counter[str] = field(default_factory=Counter)
    review_items: int = 0
    escalated_items: int = 0
    reviewed_items: int = 0
    model_errors_reviewed: int = 0
    spot_samples: int = 0
    spot_errors: int = 0
    multi_vote: Counter[str] = field(default_factory=Counter)
    disagreed: Counter[str] = field(default_factory=Counter)
    scored: Counter[str] = field(default_factory=Counter)
    agreed: Counter[str] = field(default_factory=Counter)
    corrections: Counter[str] = field(default_factory=Counter)
    revisions: Counter[str] = field(default_factory=Counter)
    review_seconds: float = 0.0
    lease_expiries: int = 0
    outliers: set[str] = field(default_factory=set)


@dataclass
class Scenario:
    """The records to publish (in a valid per-item order) and what they should produce."""

    records: list[Record]
    expected: Expected


def _other(label: str, step: int = 1) -> str:
    return CLASSES[(CLASSES.index(label) + step) % len(CLASSES)]


def policy(version: int = 1, spot_check_rate: float = 0.1) -> PolicyUpdate:
    """The scripted project's policy."""
    base = ProjectPolicy(
        project=PROJECT, label_schema=LabelSchema(id="animals", version=1, classes=list(CLASSES))
    )
    document = base.model_copy(
        update={"review": base.review.model_copy(update={"spot_check_rate": spot_check_rate})}
    )
    return PolicyUpdate(
        project=PROJECT,
        version=version,
        policy=ProjectPolicy.model_validate(document.model_dump()),
        changed_by=Actor(id="lead-1", role="lead"),
        reason="scripted",
        at=START,
    )


class Builder:
    """Collects scripted records and counts what they should produce."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.expected = Expected()

    def add(self, spec: TopicSpec, key: str, event: Event) -> None:
        self.records.append((spec, key, event))

    def prediction(self, i: int, label: str) -> Prediction:
        return Prediction(
            prediction_id=f"p{i}",
            item_id=f"i{i}",
            project=PROJECT,
            model=ModelRef(name=MODEL, version="1"),
            task_type=TaskType.CLASSIFICATION,
            label=ClassificationLabel(label=label),
            label_schema=LabelSchemaRef(id="animals", version=1),
            produced_at=START + timedelta(seconds=i),
        )

    def request(
        self, prediction: Prediction, suffix: str, tier: Tier, code: ReasonCode, **extra: object
    ) -> None:
        self.expected.requests_by_tier[tier.value] += 1
        request = ReviewRequest.model_validate(
            {
                "request_id": f"{prediction.item_id}-{suffix}",
                "item_id": prediction.item_id,
                "project": PROJECT,
                "prediction": prediction,
                "reasons": [ReviewReason(code=code)],
                "priority": 50,
                "required_tier": tier,
                "required_overlap": extra.pop("overlap", 1),
                "allowed_classes": list(CLASSES),
                "policy_version": 1,
                "created_at": prediction.produced_at,
                **extra,
            }
        )
        self.add(REVIEW_REQUESTS, prediction.item_id, request)

    def decide(
        self, prediction: Prediction, suffix: str, who: str, label: str, *, tier: Tier, i: int
    ) -> Vote:
        predicted = prediction.label
        assert isinstance(predicted, ClassificationLabel)
        action = Action.APPROVE if label == predicted.label else Action.CORRECT
        seconds = float(10 + i % 20)
        self.expected.review_seconds += seconds
        decided_at = prediction.produced_at + timedelta(minutes=5)
        decision = ReviewDecision(
            decision_id=f"{prediction.item_id}-{suffix}-{who}",
            idempotency_key=f"idem-{prediction.item_id}-{who}",
            request_id=f"{prediction.item_id}-{suffix}",
            task_id=f"task-{prediction.item_id}-{suffix}",
            item_id=prediction.item_id,
            project=PROJECT,
            reviewer=ReviewerRef(id=who, tier=tier),
            action=action,
            label=ClassificationLabel(label=label),
            seconds_spent=seconds,
            decided_at=decided_at,
        )
        self.add(REVIEW_DECISIONS, prediction.item_id, decision)
        return Vote(
            decision_id=decision.decision_id,
            reviewer=decision.reviewer,
            action=action,
            label=decision.label,
            decided_at=decided_at,
        )

    def resolve(
        self,
        prediction: Prediction,
        revision: int,
        label: str,
        *,
        method: ResolutionMethod,
        votes: list[Vote],
        spot_checked: bool = False,
    ) -> None:
        self.expected.revisions[str(revision)] += 1
        resolved_at = prediction.produced_at + (
            RESOLUTION_DELAY if method is not ResolutionMethod.AUTO else timedelta(0)
        )
        self.add(
            LABELS_RESOLVED,
            prediction.item_id,
            ResolvedLabel(
                item_id=prediction.item_id,
                project=PROJECT,
                revision=revision,
                label=ClassificationLabel(label=label),
                method=method,
                provenance=Provenance(prediction=prediction, votes=votes),
                spot_checked=spot_checked,
                first_seen_at=prediction.produced_at,
                resolved_at=resolved_at,
            ),
        )


def build(count: int = 1_000, dead_letters: int = 10, lease_expiries: int = 3) -> Scenario:
    """The scripted run for ``count`` predictions."""
    b = Builder()
    e = b.expected
    b.add(CONTROL_POLICY, PROJECT, policy())
    for i in range(count):
        predicted = CLASSES[i % 3]
        truth = _other(predicted) if i % 7 == 0 else predicted
        prediction = b.prediction(i, predicted)
        b.add(PREDICTIONS, prediction.item_id, prediction)
        e.predictions += 1
        route = i % 10
        if route <= 5 or route == 9:
            e.routed["auto"] += 1
            b.resolve(
                prediction,
                1,
                predicted,
                method=ResolutionMethod.AUTO,
                votes=[],
                spot_checked=route == 9,
            )
        if route == 9:
            _spot_check(b, prediction, truth, i)
        elif route >= 6:
            _review(b, prediction, truth, i)
    for n in range(dead_letters):
        b.add(
            PREDICTIONS_DLQ,
            f"bad-{n}",
            DeadLetter(
                original=b"{not json",
                error_kind=ErrorKind.MALFORMED_JSON,
                error="Invalid JSON",
                source=SourceRef(topic="predictions", partition=0, offset=n),
                service="router",
                at=START,
            ),
        )
    e.dead_letters = dead_letters
    for n in range(lease_expiries):
        b.add(
            AUDIT,
            f"i{n}",
            AuditEvent(
                event_id=f"lease-{n}",
                at=START,
                actor=Actor(id="service:gateway", role="service"),
                action=AuditAction.LEASE_EXPIRED,
                item_id=f"i{n}",
                project=PROJECT,
            ),
        )
    e.lease_expiries = lease_expiries
    e.outliers = {OUTLIER}
    return Scenario(b.records, e)


def _spot_check(b: Builder, prediction: Prediction, truth: str, i: int) -> None:
    e = b.expected
    b.request(prediction, "spot", Tier.REVIEWER, ReasonCode.SPOT_CHECK, spot_check=True, overlap=1)
    e.review_items += 1
    who = POOL[i // 10 % len(POOL)]
    vote = b.decide(prediction, "spot", who, truth, tier=Tier.REVIEWER, i=i)
    e.scored[who] += 1
    e.agreed[who] += 1
    e.spot_samples += 1
    predicted = prediction.label
    assert isinstance(predicted, ClassificationLabel)
    if truth != predicted.label:
        e.spot_errors += 1
        e.corrections["2"] += 1
        b.resolve(
            prediction, 2, truth, method=ResolutionMethod.MAJORITY, votes=[vote], spot_checked=True
        )


def _review(b: Builder, prediction: Prediction, truth: str, i: int) -> None:
    e = b.expected
    predicted = prediction.label
    assert isinstance(predicted, ClassificationLabel)
    e.routed["review"] += 1
    e.review_items += 1
    e.reviewed_items += 1
    b.request(prediction, "review", Tier.REVIEWER, ReasonCode.LOW_CONFIDENCE, overlap=2)
    first = POOL[i % len(POOL)]
    second = OUTLIER if i % 30 == 6 else POOL[(i + 1) % len(POOL)]
    wrong = (i // 30) % 2 == 0 if second == OUTLIER else i % 40 == 6
    votes = [
        b.decide(prediction, "review", first, truth, tier=Tier.REVIEWER, i=i),
        b.decide(
            prediction, "review", second, _other(truth) if wrong else truth, tier=Tier.REVIEWER, i=i
        ),
    ]
    for who, agreed in ((first, True), (second, not wrong)):
        e.scored[who] += 1
        e.agreed[who] += int(agreed)
    method = ResolutionMethod.MAJORITY
    if wrong:
        e.escalated_items += 1
        e.disagreed[truth] += 1
        b.add(
            LABELS_CONFLICTS,
            prediction.item_id,
            ConflictRecord(
                conflict_id=f"c-{prediction.item_id}",
                item_id=prediction.item_id,
                project=PROJECT,
                request_id=f"{prediction.item_id}-review",
                votes=votes,
                disagreement=Disagreement(agreement=0.5),
                resolution=Resolution.ESCALATED,
                escalated_to=Tier.SENIOR,
                classes=sorted({truth, _other(truth)}),
                created_at=prediction.produced_at + timedelta(minutes=6),
            ),
        )
        b.request(
            prediction, "esc", Tier.SENIOR, ReasonCode.ESCALATION, escalation_level=1, overlap=1
        )
        votes.append(b.decide(prediction, "esc", SENIOR, truth, tier=Tier.SENIOR, i=i))
        e.scored[SENIOR] += 1
        e.agreed[SENIOR] += 1
        method = ResolutionMethod.WEIGHTED
    e.multi_vote[truth] += 1
    if truth != predicted.label:
        e.model_errors_reviewed += 1
        e.corrections["1"] += 1
    b.resolve(prediction, 1, truth, method=method, votes=votes)


def expected_samples(e: Expected) -> list[tuple[str, dict[str, str], float]]:
    """(metric, labels, value) the metrics endpoint must show after the scripted run."""
    p, m = {"project": PROJECT}, {"project": PROJECT, "model": MODEL}
    out: list[tuple[str, dict[str, str], float]] = [
        ("loupe_predictions_total", m, e.predictions),
        ("loupe_dlq_total", {"error_kind": "malformed_json", "service": "router"}, e.dead_letters),
        ("loupe_review_items", p, e.review_items),
        ("loupe_escalated_items", p, e.escalated_items),
        ("loupe_reviewed_items", m, e.reviewed_items),
        ("loupe_model_errors_reviewed", m, e.model_errors_reviewed),
        ("loupe_spot_check_samples", m, e.spot_samples),
        ("loupe_spot_check_errors", m, e.spot_errors),
        ("loupe_errors_prevented", p, e.model_errors_reviewed + e.spot_errors),
        ("loupe_review_seconds_total", p, e.review_seconds),
        ("loupe_lease_expiries_total", p, e.lease_expiries),
    ]
    out += [("loupe_routed_total", {**m, "route": r}, n) for r, n in e.routed.items()]
    out += [
        ("loupe_review_requests_total", {**p, "tier": t}, n) for t, n in e.requests_by_tier.items()
    ]
    for name, n in e.multi_vote.items():
        out.append(("loupe_multi_vote_items", {**p, "class": name}, n))
        out.append(("loupe_disagreed_items", {**p, "class": name}, e.disagreed[name]))
    for reviewer, n in e.scored.items():
        out.append(("loupe_reviewer_scored_decisions", {"reviewer": reviewer}, n))
        out.append(("loupe_reviewer_agreement", {"reviewer": reviewer}, e.agreed[reviewer] / n))
        out.append(
            ("loupe_reviewer_outlier", {"reviewer": reviewer}, float(reviewer in e.outliers))
        )
    out += [
        ("loupe_label_revisions_total", {**p, "revision": r}, n) for r, n in e.revisions.items()
    ]
    out += [
        ("loupe_label_corrections_total", {**p, "revision": r}, n) for r, n in e.corrections.items()
    ]
    return out


def mismatches(
    e: Expected, samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]
) -> list[str]:
    """Human-readable differences between the expected and the scraped samples (empty: all ok)."""
    problems = []
    for name, labels, want in expected_samples(e):
        got = samples.get((name, tuple(sorted(labels.items()))))
        if got is None or abs(got - want) > 1e-9 * max(1.0, abs(want)):
            problems.append(f"{name}{labels}: expected {want}, got {got}")
    return problems
