"""Partition state: dirty tracking and changelog round trips."""

from __future__ import annotations

import numpy as np
import pytest

from loupe.router.novelty import assess
from loupe.router.state import PartitionState, StateError


def test_changes_drain_once_and_restore_to_the_same_state() -> None:
    state = PartitionState(partition=3)
    project = state.project("demo")
    project.count_classes({"3"})
    project.model_versions.add("clf@1")
    project.task_types.add("classification")
    project.data_types.add("image/png")
    reference = project.reference(("clf@1", "3"), 4)
    for i in range(10):
        assess(reference, np.arange(4.0) + i, warmup=4, quantile=0.9)
    records = state.drain_changes()
    assert len(records) == 2
    assert state.drain_changes() == []

    restored = PartitionState(partition=3)
    for key, value in records:
        restored.restore(key, value)
    again = restored.project("demo")
    assert again.class_counts == {"3": 1} and again.observations == 1
    assert again.model_versions == {"clf@1"} and again.data_types == {"image/png"}
    ref = again.references[("clf@1", "3")]
    assert ref.count == reference.count and np.array_equal(ref.m2, reference.m2)
    assert restored.reference_count() == 1


def test_only_touched_references_are_written() -> None:
    state = PartitionState(partition=0)
    project = state.project("demo")
    project.reference(("m@1", "a"), 2)
    project.reference(("m@1", "b"), 2)
    state.drain_changes()
    project.reference(("m@1", "b"), 2)
    (record,) = state.drain_changes()
    assert b'"b"' in record[0]


def test_tombstones_forget_and_garbage_is_refused() -> None:
    state = PartitionState(partition=0)
    state.project("demo").reference(("m@1", "a"), 2)
    ((key, _value),) = state.drain_changes()
    state.restore(key, None)
    assert state.reference_count() == 0
    with pytest.raises(StateError):
        state.restore(b'["what"]', b"{}")
    with pytest.raises(StateError):
        state.restore(key, b"not json")
    with pytest.raises(StateError):
        state.restore(key, b'{"format": 99}')
