"""Pure gateway logic: queue ordering, label checks, resolution rules."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.samples import AT, review_request
from loupe.gateway.logic import (
    LabelError,
    Role,
    check_label,
    default_tier,
    next_policy_version,
    queue_score,
    resolution_closes,
    vote_agrees,
)
from loupe.schemas import (
    Action,
    BoxesLabel,
    ClassificationLabel,
    ImageSize,
    Outcome,
    Provenance,
    ResolutionMethod,
    ResolvedLabel,
    Tier,
)

CLASSES = ["cat", "dog", "fox"]


@given(
    st.integers(0, 100), st.integers(0, 100), st.integers(0, 4 * 10**12), st.integers(0, 4 * 10**12)
)
def test_queue_score_orders_priority_then_age(p1, p2, t1, t2):
    s1, s2 = queue_score(p1, t1), queue_score(p2, t2)
    if p1 != p2:
        assert (s1 < s2) == (p1 > p2)
    elif t1 != t2:
        assert (s1 < s2) == (t1 < t2)
    assert float(s1) == s1  # exact as a Redis double


def test_roles_and_tiers():
    assert default_tier(Role.SENIOR) is Tier.SENIOR
    assert default_tier(Role.ADMIN) is None


def test_check_label():
    label = ClassificationLabel(label="dog")
    assert check_label("classification", CLASSES, Action.CORRECT, label) is label
    assert check_label("classification", CLASSES, Action.REJECT, label) is None
    with pytest.raises(LabelError, match="needs a label"):
        check_label("classification", CLASSES, Action.APPROVE, None)
    with pytest.raises(LabelError, match="unknown class"):
        check_label("classification", CLASSES, Action.CORRECT, ClassificationLabel(label="emu"))
    boxes = BoxesLabel(image=ImageSize(width=10, height=10), boxes=[])
    with pytest.raises(LabelError, match="does not match task type"):
        check_label("classification", CLASSES, Action.CORRECT, boxes)


def resolved(method=ResolutionMethod.WEIGHTED, request_ids=(), delta_s=10, label="dog"):
    request = review_request()
    return ResolvedLabel(
        item_id=request.item_id,
        project="demo",
        revision=2,
        outcome=Outcome.LABELLED if label else Outcome.REJECTED,
        label=ClassificationLabel(label=label) if label else None,
        method=method,
        provenance=Provenance(prediction=request.prediction, request_ids=list(request_ids)),
        first_seen_at=AT,
        resolved_at=AT + timedelta(seconds=delta_s),
    )


def test_resolution_closes():
    request = review_request()
    assert resolution_closes(resolved(request_ids=[request.request_id], delta_s=-99), request)
    assert resolution_closes(resolved(), request)
    assert not resolution_closes(resolved(delta_s=-1), request)
    assert not resolution_closes(resolved(method=ResolutionMethod.AUTO), request)


def test_automatic_label_naming_the_spot_check_request_does_not_close_it():
    request = review_request()
    auto = resolved(method=ResolutionMethod.AUTO, request_ids=[request.request_id], delta_s=5)
    assert not resolution_closes(auto, request)


def test_vote_agrees():
    final = resolved(label="dog")
    assert vote_agrees(Action.CORRECT, ClassificationLabel(label="dog"), final) is True
    assert vote_agrees(Action.APPROVE, ClassificationLabel(label="cat"), final) is False
    assert vote_agrees(Action.REJECT, None, final) is False
    assert vote_agrees(Action.REJECT, None, resolved(label=None)) is True
    assert vote_agrees(Action.ESCALATE, None, final) is None


@given(st.integers(0, 10**6), st.integers(0, 10**6))
def test_a_new_policy_version_is_newer_than_anything_stored_or_attempted(current, attempted):
    version = next_policy_version(current, attempted)
    assert version > current and version > attempted
    assert version == max(current, attempted) + 1  # no gaps beyond failed attempts


def test_a_retry_after_a_timed_out_publish_outranks_a_late_acknowledgement():
    # v4 is stored; publishing v5 timed out (Kafka may still acknowledge it later)
    assert next_policy_version(current=4, last_attempted=5) == 6
