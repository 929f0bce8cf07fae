"""Lease fencing (issue 12, point 3): a decision made under a lease that had ended, revived by
an older Redis state, is told apart by its lower token on the same overlap slot."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from loupe.schemas import (
    Action,
    ClassificationLabel,
    LeaseFence,
    ReviewDecision,
    ReviewerRef,
    Tier,
    admit_by_fence,
)
from loupe.schemas.decisions import MAX_FENCES


def _decision(slot: int | None, epoch: int, task: str = "t1", who: str = "ann") -> ReviewDecision:
    return ReviewDecision(
        decision_id=f"d-{who}-{epoch}",
        idempotency_key=f"k-{epoch}",
        request_id=f"r-{task}",
        task_id=task,
        item_id="i1",
        project="demo",
        reviewer=ReviewerRef(id=who, tier=Tier.REVIEWER),
        action=Action.APPROVE,
        label=ClassificationLabel(label="cat"),
        seconds_spent=1.0,
        decided_at=datetime(2026, 1, 1, tzinfo=UTC),
        lease=None if slot is None else LeaseFence(slot=slot, epoch=epoch),
    )


def test_a_revived_lease_is_stale_once_a_later_holder_decided_on_its_slot() -> None:
    fences: dict[str, int] = {}
    assert admit_by_fence(fences, _decision(1, 700, who="bob"))  # held the slot after ann
    assert not admit_by_fence(fences, _decision(1, 500, who="ann"))  # ann's revived lease
    assert admit_by_fence(fences, _decision(2, 600, who="cy"))  # another slot: a second person
    assert admit_by_fence(fences, _decision(1, 900, who="dee"))  # the slot's next holder


def test_the_same_slot_of_another_task_is_another_slot() -> None:
    fences: dict[str, int] = {}
    assert admit_by_fence(fences, _decision(1, 700, task="t1"))
    assert admit_by_fence(fences, _decision(1, 500, task="t2"))


def test_a_decision_without_a_fence_always_counts() -> None:
    fences = {"t1\x1f1": 10**15}
    assert admit_by_fence(fences, _decision(None, 1))


@given(st.lists(st.tuples(st.integers(1, 3), st.integers(1, 10**6)), max_size=200))
def test_admitted_iff_no_higher_token_was_seen_on_the_slot_and_the_map_stays_bounded(
    decisions: list[tuple[int, int]],
) -> None:
    fences: dict[str, int] = {}
    highest: dict[int, int] = {}
    for slot, epoch in decisions:
        assert admit_by_fence(fences, _decision(slot, epoch)) == (epoch >= highest.get(slot, 0))
        highest[slot] = max(highest.get(slot, 0), epoch)
        assert len(fences) <= MAX_FENCES


def test_the_map_keeps_the_latest_slots() -> None:
    fences: dict[str, int] = {}
    for n in range(MAX_FENCES + 10):
        admit_by_fence(fences, _decision(1, 5, task=f"t{n}"))
    assert len(fences) == MAX_FENCES
    assert f"t{MAX_FENCES + 9}\x1f1" in fences and "t0\x1f1" not in fences
