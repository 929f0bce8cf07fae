"""Partition state: dirty tracking and changelog round trips."""

from __future__ import annotations

import numpy as np
import pytest
from annotated_types import Ge
from hypothesis import given, settings
from hypothesis import strategies as st

from loupe.router.novelty import assess
from loupe.router.state import PartitionState, StateError
from loupe.runtime.settings import ServiceSettings


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


# Record limit: no changelog record is larger than the smallest max_record_bytes the settings
# allow, however large a piece of state grows (issue 11, point 2).


def smallest_record_limit() -> int:
    field = ServiceSettings.model_fields["max_record_bytes"]
    return next(int(m.ge) for m in field.metadata if isinstance(m, Ge))


def large_state(seed: int = 0) -> PartitionState:
    """A 4,096-dimension reference and the meta of 1,000 long class names (about 1 MB of JSON)."""
    state = PartitionState(partition=1)
    project = state.project("demo")
    rng = np.random.default_rng(seed)
    project.count_classes({f"{i:04d}-" + 'é\\"' * 40 for i in range(1_000)})
    project.model_versions.update(f"m{'x' * 250}@{i:0250d}" for i in range(100))
    reference = project.reference(("m@1", "*"), 4_096)
    for x in rng.normal(0, 1, size=(30, 4_096)):
        assess(reference, x, warmup=20, quantile=0.9)
    return state


def restored_from(records: list[tuple[bytes, bytes]]) -> PartitionState:
    restored = PartitionState(partition=1)
    for key, value in records:
        restored.restore(key, value)
    return restored


def compacted(records: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """What compaction leaves: the latest record of every key, in log order."""
    latest = {key: offset for offset, (key, _) in enumerate(records)}
    return [record for offset, record in enumerate(records) if latest[record[0]] == offset]


def same_state(a: PartitionState, b: PartitionState) -> bool:
    return {n: p.meta_json() for n, p in a.projects.items()} == {
        n: p.meta_json() for n, p in b.projects.items()
    } and {(n, k): r.to_json() for n, p in a.projects.items() for k, r in p.references.items()} == {
        (n, k): r.to_json() for n, p in b.projects.items() for k, r in p.references.items()
    }


def test_no_state_record_exceeds_the_smallest_record_limit_and_large_state_round_trips() -> None:
    state = large_state()
    records = state.drain_changes()
    limit = smallest_record_limit()
    sizes = [len(key) + len(value) for key, value in records]
    assert sum(sizes) > 2 * limit  # the state is larger than any one record may be
    assert max(sizes) <= limit, f"a state record of {max(sizes)} bytes, limit {limit}"
    assert same_state(restored_from(records), state)
    assert same_state(restored_from(compacted(records)), state)


def test_a_piece_in_parts_survives_rewrites_shrinking_and_compaction() -> None:
    state = large_state()
    log = state.drain_changes()
    project = state.project("demo")
    reference = project.references[("m@1", "*")]
    for x in np.random.default_rng(5).normal(0, 1, size=(5, 4_096)):
        assess(project.reference(("m@1", "*"), 4_096), x, warmup=20, quantile=0.9)
    project.count_classes({"0001-" + 'é\\"' * 40})
    log += state.drain_changes()
    # the meta shrinks to one small record: its old parts must not come back on restore
    project.class_counts = {"a": 1}
    project.model_versions = {"m@1"}
    project.meta_dirty = True
    log += state.drain_changes()
    assert reference.count == 35
    for view in (log, compacted(log)):
        restored = restored_from(view)
        assert same_state(restored, state)
        # and what is written next from the restored state replaces what is in the log
        restored.project("demo").count_classes({f"{i:04d}-" + "x" * 120 for i in range(900)})
        again = restored.drain_changes()
        assert same_state(restored_from(compacted(view + again)), restored)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_restore_after_any_partial_compaction_gives_the_latest_state(data: st.DataObject) -> None:
    state = large_state()
    log = state.drain_changes()
    project = state.project("demo")
    for round_ in range(3):
        names = {f"{round_}-{i}-" + "y" * 100 for i in range(data.draw(st.integers(0, 400)))}
        project.count_classes(names)
        log += state.drain_changes()
    # the log cleaner compacts a prefix (closed segments) and leaves the rest as it is
    cut = data.draw(st.integers(0, len(log)))
    assert same_state(restored_from(compacted(log[:cut]) + log[cut:]), state)
