"""Following policies, building audited updates, and the controller state rebuilt from Kafka."""

from __future__ import annotations

from datetime import timedelta

from loupe.metrics.adaptive import apply_locally, evaluate
from loupe.metrics.aggregate import MetricsState
from loupe.metrics.controller import ControllerConfig
from loupe.metrics.policies import AUDIT_KIND, CONTROLLER_ACTOR, PolicyBook
from loupe.metrics.scenario import MODEL, PROJECT, START, build, policy
from loupe.schemas import Actor, AuditAction, PolicyUpdate, decode

SCENARIO = build(1_000)
CONFIG = ControllerConfig()
LATER = START + timedelta(hours=1)


def scripted_state(feed) -> MetricsState:
    return feed(MetricsState(), SCENARIO.records)


def test_newer_versions_win_and_knob_changes_restart_evidence() -> None:
    book = PolicyBook()
    assert book.on_update(policy(1))
    assert not book.on_update(policy(1, spot_check_rate=0.3))
    assert book.projects[PROJECT].knobs_version == 1
    same_knobs = policy(2).model_copy(update={"reason": "renamed a class"})
    assert book.on_update(same_knobs)
    assert book.projects[PROJECT].knobs_version == 1
    assert book.on_update(policy(3, spot_check_rate=0.2))
    assert book.projects[PROJECT].knobs_version == 3
    assert book.threshold(PROJECT, MODEL) == 0.8


def test_raise_on_the_scripted_run_is_a_valid_audited_update(feed) -> None:
    state = scripted_state(feed)
    change = evaluate(state, CONFIG, PROJECT, LATER)
    assert change is not None
    update, audit = change
    assert decode(PolicyUpdate, update.to_json_bytes()) == update
    assert update.version == 2 and update.changed_by == CONTROLLER_ACTOR
    assert update.policy.review.spot_check_rate == 0.2
    assert update.policy.confidence.per_model == {MODEL: 0.85}
    assert update.reason.startswith("raise review: lower bound above target 0.050")
    assert audit.action is AuditAction.POLICY_CHANGE and audit.project == PROJECT
    assert audit.reason == update.reason
    assert audit.details["kind"] == AUDIT_KIND and audit.details["raised_from"] == {MODEL: 0.8}
    apply_locally(state, update, audit)
    assert evaluate(state, CONFIG, PROJECT, LATER) is None  # evidence restarted at v2
    assert state.policies.floor(PROJECT, MODEL) == 0.8


def test_controller_memory_is_rebuilt_from_kafka_in_any_order(feed) -> None:
    first = scripted_state(feed)
    change = evaluate(first, CONFIG, PROJECT, LATER)
    assert change is not None
    update, audit = change
    replayed = MetricsState()
    replayed.on_audit(audit)  # audit topic read before control.policy this time
    replayed.on_policy(update)
    feed(replayed, SCENARIO.records)  # the old v1 policy record is not newer: ignored
    assert replayed.policies.projects[PROJECT].update.version == 2
    assert replayed.policies.floor(PROJECT, MODEL) == 0.8
    assert evaluate(replayed, CONFIG, PROJECT, LATER) is None


def test_a_person_changing_the_knobs_clears_the_floor(feed) -> None:
    state = scripted_state(feed)
    change = evaluate(state, CONFIG, PROJECT, LATER)
    assert change is not None
    apply_locally(state, *change)
    by_lead = policy(3, spot_check_rate=0.05).model_copy(
        update={"changed_by": Actor(id="lead-1", role="lead"), "at": LATER + timedelta(minutes=1)}
    )
    state.on_policy(by_lead)
    assert state.policies.floor(PROJECT, MODEL) is None


def test_no_policy_no_action(feed) -> None:
    records = [r for r in SCENARIO.records if r[0].name != "control.policy"]
    state = feed(MetricsState(), records)
    assert evaluate(state, CONFIG, PROJECT, LATER) is None
