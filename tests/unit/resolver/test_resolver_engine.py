"""The resolver's per-item decision logic: voting, escalation, finality, safety, spot checks."""

from __future__ import annotations

import pytest

from loupe.resolver import simulate
from loupe.resolver.engine import MAX_ROUND_VOTES, Effects, Engine, ItemOverflowError
from loupe.resolver.state import WAITING_VOTES, ItemState
from loupe.schemas import (
    Action,
    Box,
    BoxesLabel,
    ClassificationLabel,
    ImageSize,
    Outcome,
    ReasonCode,
    Resolution,
    ResolutionMethod,
    ReviewDecision,
    ReviewRequest,
    Tier,
)
from loupe.schemas.policy import ConsolidationMethod

CLASSES = ["cat", "dog", "fox"]
MAJORITY = ConsolidationMethod.MAJORITY


def cls(name: str) -> ClassificationLabel:
    return ClassificationLabel(label=name)


def run(
    engine: Engine, events: list[ReviewRequest | ReviewDecision], state: ItemState | None = None
) -> tuple[ItemState, Effects]:
    total = Effects()
    for event in events:
        if isinstance(event, ReviewRequest):
            state, effects = engine.on_request(state, event)
        else:
            state, effects = engine.on_decision(state, event)
        total.resolved += effects.resolved
        total.conflicts += effects.conflicts
        total.requests += effects.requests
        total.audits += effects.audits
    assert state is not None
    # every state survives the table round trip
    assert ItemState.from_bytes(state.to_bytes()) == state
    return state, total


def votes(req: ReviewRequest, answers: list[str], tier: Tier | None = None) -> list[ReviewDecision]:
    return [
        simulate.decision(req, f"r{i}", label=cls(a), seq=i, tier=tier)
        for i, a in enumerate(answers)
    ]


def test_majority_resolves_when_overlap_reached_and_records_the_conflict() -> None:
    req = simulate.request("i1", cls("cat"), CLASSES, overlap=3, method=MAJORITY)
    state, out = run(Engine(), [req, *votes(req, ["dog", "dog"])])
    assert out.resolved == [] and state.status == "open"
    state, out = run(Engine(), [req, *votes(req, ["dog", "dog", "cat"])])
    [label] = out.resolved
    assert label.label == cls("dog").model_copy(update={"scores": label.label.scores})  # type: ignore[union-attr]
    assert label.revision == 2 and label.method is ResolutionMethod.MAJORITY  # 1: automatic
    assert label.provenance.decided_by == ["r0", "r1"]
    [conflict] = out.conflicts
    assert conflict.resolution is Resolution.MAJORITY
    assert abs(conflict.disagreement.agreement - 2 / 3) < 1e-9


def test_decisions_before_the_request_are_counted_when_it_arrives() -> None:
    req = simulate.request("i1", cls("cat"), CLASSES, overlap=2, method=MAJORITY)
    _, out = run(Engine(), [*votes(req, ["fox", "fox"]), req])
    assert [r.label.label for r in out.resolved] == ["fox"]  # type: ignore[union-attr]


def test_redelivered_decisions_count_once() -> None:
    req = simulate.request("i1", cls("cat"), CLASSES, overlap=3, method=MAJORITY)
    first = votes(req, ["dog"])[0]
    state, out = run(Engine(), [req, first, first, first])
    assert out.resolved == [] and len(state.votes) == 1


def test_tie_escalates_one_tier_up_with_the_conflict_attached() -> None:
    req = simulate.request("i1", cls("cat"), CLASSES, overlap=3, method=MAJORITY)
    engine = Engine()
    state, out = run(engine, [req, *votes(req, ["cat", "dog", "fox"])])
    assert out.resolved == []
    [escalated] = out.requests
    assert escalated.required_tier is Tier.SENIOR and escalated.escalation_level == 1
    assert escalated.request_id == "req-i1~esc1"
    assert escalated.reasons[0].code is ReasonCode.ESCALATION
    assert escalated.conflict is not None and escalated.conflict.escalated_to is Tier.SENIOR
    assert [c.resolution for c in out.conflicts] == [Resolution.ESCALATED]
    # reading our own escalation back from review.requests changes nothing
    state, again = run(engine, [escalated], state)
    assert len(again) == 0
    senior = simulate.decision(escalated, "s1", label=cls("dog"), seq=9)
    state, out = run(engine, [senior], state)
    [label] = out.resolved
    assert label.label.label == "dog"  # type: ignore[union-attr]
    assert label.provenance.escalation_path == [Tier.REVIEWER, Tier.SENIOR]


def test_replaying_the_same_inputs_gives_identical_outputs() -> None:
    req = simulate.request("i1", cls("cat"), CLASSES, overlap=3, method=MAJORITY)
    events = [req, *votes(req, ["cat", "dog", "fox"])]
    _, first = run(Engine(), events)
    _, second = run(Engine(), events)
    assert [r.to_json_bytes() for r in first.requests] == [
        r.to_json_bytes() for r in second.requests
    ]
    assert [a.to_json_bytes() for a in first.audits] == [a.to_json_bytes() for a in second.audits]


def test_lead_decision_is_final_at_once_and_overrides_later() -> None:
    req = simulate.request("i1", cls("cat"), CLASSES, overlap=3, method=MAJORITY)
    lead = simulate.decision(req, "lead-1", label=cls("fox"), tier=Tier.LEAD, seq=1)
    engine = Engine()
    state, out = run(engine, [req, lead])
    [label] = out.resolved
    assert label.method is ResolutionMethod.LEAD and label.provenance.decided_by == ["lead-1"]
    override = simulate.decision(req, "lead-2", label=cls("dog"), seq=2, final=True)
    state, out = run(engine, [override], state)
    assert [r.revision for r in out.resolved] == [3]
    same = simulate.decision(req, "lead-3", label=cls("dog"), seq=3, final=True)
    _, out = run(engine, [same], state)
    assert out.resolved == []


def test_lead_reject_gives_a_rejected_outcome() -> None:
    req = simulate.request("i1", cls("cat"), CLASSES, overlap=1, method=MAJORITY)
    lead = simulate.decision(req, "lead", action=Action.REJECT, tier=Tier.LEAD)
    _, out = run(Engine(), [req, lead])
    assert out.resolved[0].outcome is Outcome.REJECTED and out.resolved[0].label is None


def test_safety_critical_needs_two_approval_layers() -> None:
    req = simulate.request(
        "i1", cls("cat"), CLASSES, overlap=2, method=MAJORITY, safety_critical=True
    )
    engine = Engine()
    state, out = run(engine, [req, *votes(req, ["cat", "cat"])])
    assert out.resolved == []
    [approval] = out.requests
    assert approval.required_tier is Tier.SENIOR and approval.conflict is None
    state, out = run(engine, [simulate.decision(approval, "s1", label=cls("cat"), seq=5)], state)
    assert [r.label.label for r in out.resolved] == ["cat"]  # type: ignore[union-attr]


def test_spot_check_publishes_a_correction_only_on_disagreement() -> None:
    agree = simulate.request("i1", cls("cat"), CLASSES, overlap=1, spot_check=True)
    _, out = run(Engine(), [agree, *votes(agree, ["cat"])])
    assert out.resolved == [] and out.audits[-1].reason == "spot check confirmed the model"
    differ = simulate.request(
        "i2", cls("cat"), CLASSES, overlap=1, method=MAJORITY, spot_check=True
    )
    _, out = run(Engine(), [differ, *votes(differ, ["dog"])])
    [label] = out.resolved
    assert label.revision == 2 and label.spot_checked and label.label.label == "dog"  # type: ignore[union-attr]


def test_weighted_low_confidence_escalates_and_reliability_learns() -> None:
    engine = Engine()
    for n in range(30):
        req = simulate.request(f"i{n}", cls("cat"), CLASSES, overlap=3)
        answers = ["dog", "dog", "dog"]
        run(engine, [req, *votes(req, answers)])
    assert engine.reliability.accuracy("sim", "r0", Tier.REVIEWER) > 0.95
    req = simulate.request("x", cls("cat"), CLASSES, overlap=1, min_confidence=0.99)
    _, out = run(Engine(), [req, *votes(req, ["dog"])])
    assert out.requests and out.requests[0].required_tier is Tier.SENIOR


def test_reviewer_escalate_action_escalates_immediately() -> None:
    req = simulate.request("i1", cls("cat"), CLASSES, overlap=3, method=MAJORITY)
    ask = simulate.decision(req, "r1", action=Action.ESCALATE)
    _, out = run(Engine(), [req, ask])
    assert [r.required_tier for r in out.requests] == [Tier.SENIOR]


def test_skip_does_not_count_as_a_vote() -> None:
    req = simulate.request("i1", cls("cat"), CLASSES, overlap=1, method=MAJORITY)
    skip = simulate.decision(req, "r1", action=Action.SKIP)
    state, out = run(Engine(), [req, skip])
    assert out.resolved == [] and state.votes == []


def test_boxes_resolve_by_consensus_with_disagreement_measures() -> None:
    image = ImageSize(width=640, height=480)

    def drawn(*boxes: tuple[str, float]) -> BoxesLabel:
        return BoxesLabel(
            image=image,
            boxes=[Box(label=name, x=x, y=10, w=50, h=50) for name, x in boxes],
        )

    req = simulate.request("b1", drawn(("cat", 10)), CLASSES, overlap=3, method=MAJORITY)
    decisions = [
        simulate.decision(req, "r0", label=drawn(("cat", 10), ("dog", 300)), seq=0),
        simulate.decision(req, "r1", label=drawn(("cat", 12)), seq=1),
        simulate.decision(req, "r2", label=drawn(("cat", 11), ("dog", 302), ("fox", 500)), seq=2),
    ]
    _, out = run(Engine(), [req, *decisions])
    [label] = out.resolved
    assert isinstance(label.label, BoxesLabel)
    assert [b.label for b in label.label.boxes] == ["cat", "dog"]
    [conflict] = out.conflicts
    assert conflict.disagreement.unmatched_boxes == 1
    assert conflict.disagreement.mean_iou is not None and conflict.disagreement.mean_iou > 0.9


def test_a_flood_of_votes_in_one_round_is_refused_and_skips_never_grow_the_state() -> None:
    req = simulate.request("i1", cls("cat"), CLASSES, overlap=10)
    engine = Engine()
    state, _ = engine.on_request(None, req)
    for n in range(1_000):
        state, _ = engine.on_decision(
            state, simulate.decision(req, f"s{n}", action=Action.SKIP, seq=n)
        )
    assert len(state.to_bytes()) < 30_000
    for n in range(9):
        state, _ = engine.on_decision(state, simulate.decision(req, f"r{n}", label=cls("cat")))
    state, _ = engine.on_decision(state, simulate.decision(req, "r9", label=cls("dog")))
    # resolved or escalated: later votes on this round's request are a flood beyond a bound
    for n in range(MAX_ROUND_VOTES - 10):
        state, _ = engine.on_decision(state, simulate.decision(req, f"x{n}", label=cls("cat")))
    with pytest.raises(ItemOverflowError):
        engine.on_decision(state, simulate.decision(req, "late", label=cls("cat"), seq=999))


def test_votes_for_requests_never_seen_cannot_lock_out_the_real_ones() -> None:
    """A producer's votes for request ids that never arrive are capped apart: the item's real
    votes still count and its state stays bounded."""
    req = simulate.request("i1", cls("cat"), CLASSES, overlap=2, method=MAJORITY)
    engine = Engine()
    state, _ = engine.on_request(None, req)
    for n in range(1_000):
        ghost = req.model_copy(update={"request_id": f"ghost-{n}"})
        state, _ = engine.on_decision(state, simulate.decision(ghost, f"g{n}", label=cls("dog")))
    assert len(state.votes) <= WAITING_VOTES
    resolved = []
    for n, answer in enumerate(["fox", "fox"]):
        state, effects = engine.on_decision(
            state, simulate.decision(req, f"r{n}", label=cls(answer))
        )
        resolved += effects.resolved
    [label] = resolved
    assert getattr(label.label, "label", None) == "fox"


def test_a_final_override_counts_even_for_a_request_the_resolver_never_saw() -> None:
    req = simulate.request("i1", cls("cat"), CLASSES, overlap=3, method=MAJORITY)
    other = simulate.request("i1", cls("cat"), CLASSES).model_copy(update={"request_id": "x"})
    override = simulate.decision(
        other, "lead", label=cls("fox"), seq=3, final=True, tier=Tier.SENIOR
    )
    _, out = run(Engine(), [req, *votes(req, ["cat"]), override])
    [label] = out.resolved
    assert label.method is ResolutionMethod.LEAD and label.label.label == "fox"  # type: ignore[union-attr]
    assert [v.decision_id for v in label.provenance.votes][-1] == override.decision_id


def test_a_leads_final_call_measures_agreement_with_the_projects_box_iou() -> None:
    # the policy says boxes agree from IoU 0.8: a vote whose box overlaps the lead's by about
    # 0.67 disagrees with the lead, though it would agree under a default of 0.5
    image = ImageSize(width=640, height=480)

    def drawn(x: float) -> BoxesLabel:
        return BoxesLabel(image=image, boxes=[Box(label="cat", x=x, y=10, w=50, h=50)])

    req = simulate.request("b2", drawn(10), CLASSES, overlap=2, method=MAJORITY)
    req = req.model_copy(
        update={"consolidation": req.consolidation.model_copy(update={"min_box_iou": 0.8})}
    )
    vote = simulate.decision(req, "r0", label=drawn(20), seq=0)
    lead = simulate.decision(req, "lead", label=drawn(10), tier=Tier.LEAD, seq=1)
    _, out = run(Engine(), [req, vote, lead])
    [label] = out.resolved
    assert label.method is ResolutionMethod.LEAD
    [conflict] = out.conflicts  # and it is recorded with the class names, not the boxes
    assert conflict.disagreement.agreement == pytest.approx(0.5)  # the lead agrees with itself
    assert conflict.classes == ["cat"]
