"""The demo's live counts and its rule for when a run has settled."""

from __future__ import annotations

from loupe.demo.progress import metric_estimates, summarize
from loupe.demo.report import Observed
from loupe.schemas import ReasonCode, ResolutionMethod
from unit.demo.demo_events import decision, request, resolved

TRUTH = {"a": "1", "b": "2", "c": "0"}
PREDICTED = {"a": "1", "b": "1", "c": "1"}


def test_an_item_awaiting_votes_keeps_the_run_open() -> None:
    observed = Observed(
        requests=[request("c", ReasonCode.NOVEL)],
        decisions=[decision("c", "ada", "0")],
        resolved=[resolved("a", "1"), resolved("b", "1")],
    )
    progress = summarize(observed, items_in=3, truth=TRUTH, predicted=PREDICTED)
    assert progress.auto_accepted == 2
    assert progress.in_review == 1 and progress.open_tasks == 1
    assert progress.labelled == 2
    assert progress.model_error_rate == 0.5 and progress.current_error_rate == 0.5
    assert not progress.complete(3)


def test_complete_once_votes_are_in_and_answered() -> None:
    answered = resolved("c", "0", revision=1, method=ResolutionMethod.WEIGHTED)
    answered = answered.model_copy(
        update={"provenance": answered.provenance.model_copy(update={"request_ids": ["r-c-0"]})}
    )
    observed = Observed(
        requests=[request("c", ReasonCode.NOVEL)],
        decisions=[decision("c", "ada", "0"), decision("c", "ben", "0")],
        resolved=[resolved("a", "1"), resolved("b", "1"), answered],
    )
    progress = summarize(observed, items_in=3, truth=TRUTH, predicted=PREDICTED)
    assert progress.open_tasks == 0 and progress.unanswered_tasks == 0
    assert progress.resolved_by_review == 1
    assert progress.complete(3)
    assert progress.current_error_rate == 1 / 3


def test_voted_but_unanswered_task_keeps_the_run_open() -> None:
    observed = Observed(
        requests=[request("c", ReasonCode.NOVEL)],
        decisions=[decision("c", "ada", "0"), decision("c", "ben", "2")],
        resolved=[resolved("a", "1"), resolved("b", "1"), resolved("c", "1")],
    )
    progress = summarize(observed, items_in=3, truth=TRUTH, predicted=PREDICTED)
    assert progress.unanswered_tasks == 1
    assert not progress.complete(3)


def test_unreviewed_spot_checks_are_optional_only_when_asked() -> None:
    observed = Observed(
        requests=[request("a", ReasonCode.SPOT_CHECK, spot=True)],
        resolved=[resolved("a", "1"), resolved("b", "1"), resolved("c", "1")],
    )
    progress = summarize(observed, items_in=3, truth=TRUTH, predicted=PREDICTED)
    assert progress.open_spot_checks == 1
    assert not progress.complete(3)
    assert progress.complete(3, spot_checks_optional=True)
    assert not progress.complete(4, spot_checks_optional=True)


EXPOSITION = """\
# HELP loupe_spot_check_error_rate Auto-accept error estimated from spot checks.
# TYPE loupe_spot_check_error_rate gauge
loupe_spot_check_error_rate{model="m@1",project="digits"} 0.025
loupe_spot_check_error_rate{model="m@1",project="other"} 0.5
# HELP loupe_spot_check_samples Completed spot checks.
# TYPE loupe_spot_check_samples gauge
loupe_spot_check_samples{model="m@1",project="digits"} 40.0
# HELP loupe_model_error_rate_reviewed Model error on reviewed items.
# TYPE loupe_model_error_rate_reviewed gauge
loupe_model_error_rate_reviewed{model="m@1",project="digits"} 0.61
# HELP loupe_unrelated Something else.
# TYPE loupe_unrelated gauge
loupe_unrelated{project="digits"} 7.0
"""


def test_metric_estimates_pick_the_projects_error_gauges() -> None:
    estimates = metric_estimates(EXPOSITION, "digits")
    assert estimates == {
        "loupe_spot_check_error_rate": 0.025,
        "loupe_spot_check_samples": 40.0,
        "loupe_model_error_rate_reviewed": 0.61,
    }
    observed = Observed(resolved=[resolved("a", "1")])
    line = summarize(observed, items_in=1, truth=TRUTH, predicted=PREDICTED).line(
        12.0, 3, estimates
    )
    assert "auto-accept error 2.5% (n=40)" in line
    assert "model error on reviewed items 61%" in line
    assert metric_estimates("", "digits") == {}
