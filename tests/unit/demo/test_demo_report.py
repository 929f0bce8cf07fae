"""The demo's report: error rates, review fraction, disagreement and reviewer quality."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from loupe.demo.report import Observed, build_report, disagreement_rate, latest_labels
from loupe.schemas import ReasonCode, ResolutionMethod, Tier
from unit.demo.demo_events import decision, request, resolved


def test_latest_revision_wins_whatever_the_order() -> None:
    labels = [resolved("a", "1", 2), resolved("a", "0", 1), resolved("b", "2", 1)]
    latest = latest_labels(labels)
    assert latest["a"].revision == 2
    assert latest["a"].label.label == "1"  # type: ignore[union-attr]
    assert set(latest) == {"a", "b"}


def test_full_report_on_a_small_scenario() -> None:
    truth = {"a": "1", "b": "1", "c": "0", "d": "2"}  # "0" is the held-out class
    predicted = {"a": "1", "b": "2", "c": "1", "d": "2"}  # two model errors: b, c
    observed = Observed(
        requests=[
            request("c", ReasonCode.NOVEL, ReasonCode.LOW_CONFIDENCE),
            request("d", ReasonCode.SPOT_CHECK, spot=True),
            request("c", ReasonCode.ESCALATION, level=1),
        ],
        decisions=[
            decision("c", "ada", "0"),
            decision("c", "cal", "2"),
            decision("c", "lea", "0", seconds=30.0, tier=Tier.LEAD),
            decision("d", "ada", "2"),
            decision("d", "cal", "2"),
        ],
        resolved=[
            resolved("a", "1"),
            resolved("b", "2"),
            resolved("d", "2"),
            resolved("c", "0", method=ResolutionMethod.LEAD),
            resolved("zzz", "0"),  # not one of the demo's items: ignored
        ],
        dlq=3,
    )
    report = build_report(
        truth=truth,
        predicted=predicted,
        held_out_class="0",
        observed=observed,
        malformed_sent=3,
        elapsed_s=12.5,
    )
    assert report.items == 4
    assert report.auto_accepted == 3
    assert report.reviewed == 2
    assert report.review_fraction == 0.5
    assert report.spot_checked == 1 and report.spot_checks_reviewed == 1
    assert report.model_errors == 2 and report.model_error_rate == 0.5
    assert report.final_errors == 1 and report.final_error_rate == 0.25  # b stayed wrong
    assert report.error_reduction == 2.0
    assert report.held_out_items == 1 and report.novel_caught == 1
    assert report.novel_caught_rate == 1.0 and report.familiar_flagged_novel == 0
    assert report.held_out_final_correct == 1
    assert report.escalations == 1
    assert report.reasons == {"escalation": 1, "low_confidence": 1, "novel": 1, "spot_check": 1}
    assert report.disagreement_rate == 0.5  # task c split, task d unanimous
    assert report.review_votes == 5
    assert report.review_seconds == 270.0
    assert report.review_cost_units == 4.0 + 2.0  # 4 reviewer-minutes + half a lead-minute
    by_id = {q.id: q for q in report.reviewers}
    assert by_id["cal"].accuracy == 0.5 and by_id["ada"].accuracy == 1.0
    assert report.careless_reviewer is None  # nobody has 5 labelled votes yet
    assert report.as_dict()["final_error_rate"] == 0.25


def test_unresolved_items_count_as_errors() -> None:
    report = build_report(
        truth={"a": "1", "b": "1"},
        predicted={"a": "1", "b": "1"},
        held_out_class="0",
        observed=Observed(resolved=[resolved("a", "1")]),
        malformed_sent=0,
        elapsed_s=1.0,
    )
    assert report.unresolved == 1
    assert report.final_error_rate == 0.5
    assert report.model_error_rate == 0.0


def test_careless_reviewer_stands_out() -> None:
    truth = {f"i{n}": "1" for n in range(10)}
    decisions = [decision(item, "ada", "1") for item in truth]
    decisions += [decision(item, "cal", "2" if n % 2 else "1") for n, item in enumerate(truth)]
    report = build_report(
        truth=truth,
        predicted=truth,
        held_out_class="0",
        observed=Observed(decisions=decisions),
        malformed_sent=0,
        elapsed_s=1.0,
    )
    assert report.careless_reviewer == "cal"


@given(st.lists(st.lists(st.sampled_from("012"), min_size=1, max_size=4), max_size=20))
def test_disagreement_rate_is_the_share_of_split_multi_vote_tasks(tasks: list[list[str]]) -> None:
    decisions = []
    for index, labels in enumerate(tasks):
        decisions += [decision(f"t{index}", f"r{n}", label) for n, label in enumerate(labels)]
    multi = [labels for labels in tasks if len(labels) >= 2]
    expected = sum(len(set(labels)) > 1 for labels in multi) / len(multi) if multi else 0.0
    assert disagreement_rate(decisions) == expected
