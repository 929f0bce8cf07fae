"""Per-partition progress: a partition with lag and no progress is named, with a reason."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from loupe.router.progress import PartitionProgress, StallReason

LIMIT = 60.0


def test_a_partition_with_lag_and_no_commit_is_stalled_while_the_others_progress() -> None:
    progress = PartitionProgress()
    progress.assigned([0, 1, 2], now=0.0, committed={})
    progress.observed({0: (0, 50), 1: (0, 0), 2: (0, 7)}, {}, (), now=10.0)
    progress.committed({2: 4}, now=50.0)  # its lag is 3 now, it keeps its clock
    assert progress.stalls(59.0, LIMIT, recovering=False, in_flight=[]) == []
    progress.observed({0: (0, 80), 1: (0, 0), 2: (0, 7)}, {}, (), now=70.0)
    [stall] = progress.stalls(71.0, LIMIT, recovering=False, in_flight=[])
    # nothing committed: the lag counts from the partition's start
    assert (stall.partition, stall.lag, stall.reason) == (0, 80, StallReason.NOT_CONSUMING)
    assert stall.as_dict() == {
        "partition": 0,
        "lag": 80,
        "seconds_since_progress": 71.0,
        "reason": "not_consuming",
        "error": None,
    }


def test_the_reason_says_what_the_router_is_doing() -> None:
    progress = PartitionProgress()
    progress.assigned([0, 1], now=0.0, committed={0: 0})
    progress.observed({0: (0, 5), 1: (0, 5)}, {}, (), now=1.0)
    assert {s.reason for s in progress.stalls(100.0, LIMIT, recovering=True, in_flight=[0])} == {
        StallReason.RECOVERING
    }
    stalls = progress.stalls(100.0, LIMIT, recovering=False, in_flight=[0])
    assert [(s.partition, s.reason) for s in stalls] == [
        (0, StallReason.COMMIT_PENDING),
        (1, StallReason.NOT_CONSUMING),
    ]


def test_nothing_to_read_is_progress_and_partitions_gone_are_forgotten() -> None:
    progress = PartitionProgress()
    progress.assigned([0, 1], now=0.0, committed={0: 0})
    progress.observed({0: (0, 0), 1: (0, 9)}, {}, (), now=100.0)
    assert [s.partition for s in progress.stalls(100.0, LIMIT, recovering=False, in_flight=[])] == [
        1
    ]
    progress.assigned([0], now=100.0, committed={})
    assert progress.stalls(100.0, LIMIT, recovering=False, in_flight=[]) == []
    assert set(progress.seconds_since_progress(100.0)) == {0}
    progress.observed(
        {1: (0, 9)}, {}, (), now=100.0
    )  # a late reading of a partition gone: no effect
    assert set(progress.seconds_since_progress(100.0)) == {0}


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["commit", "observe"]),
            st.integers(0, 3),
            st.integers(0, 100),
            st.integers(0, 100),
            st.floats(0, 10),
        ),
        max_size=60,
    )
)
def test_a_stall_always_has_lag_and_is_older_than_the_limit(
    steps: list[tuple[str, int, int, int, float]],
) -> None:
    progress = PartitionProgress()
    progress.assigned(range(4), now=0.0, committed={})
    now = 0.0
    for step, partition, offset, end, dt in steps:
        now += dt
        if step == "commit":
            progress.committed({partition: offset}, now)
        else:
            progress.observed({partition: (0, end)}, {}, (), now)
        for stall in progress.stalls(now + 1.0, 5.0, recovering=False, in_flight=[]):
            assert stall.lag != 0 and stall.seconds_since_progress > 5.0  # -1: unknown


def test_lag_counts_from_the_last_commit_or_the_partition_start() -> None:
    progress = PartitionProgress()
    progress.assigned([0, 1], now=0.0, committed={0: 40})
    progress.observed({0: (0, 100), 1: (500, 500)}, {}, (), now=0.0)  # 1: retention removed it all
    assert [
        (s.partition, s.lag) for s in progress.stalls(61.0, LIMIT, recovering=False, in_flight=[])
    ] == [(0, 60)]
    progress.committed({0: 100}, now=62.0)
    progress.observed({0: (0, 100), 1: (500, 500)}, {}, (), now=62.0)
    assert progress.stalls(100.0, LIMIT, recovering=False, in_flight=[]) == []


def test_transaction_markers_after_the_last_commit_are_not_lag() -> None:
    """A transactional producer's commit marker takes an offset: committed 3, end 4. Read past
    it with nothing in flight, the partition has nothing to do."""
    progress = PartitionProgress()
    progress.assigned([0], now=0.0, committed={0: 3})
    progress.observed({0: (0, 4)}, {0: 4}, (), now=100.0)
    assert progress.stalls(100.0, LIMIT, recovering=False, in_flight=[]) == []
    progress.observed({0: (0, 4)}, {0: 4}, {0}, now=200.0)  # its records are in a transaction
    [stall] = progress.stalls(200.0, LIMIT, recovering=False, in_flight=[0])
    assert (stall.lag, stall.reason) == (1, StallReason.COMMIT_PENDING)


def test_a_partition_never_fetched_is_named_with_an_unknown_lag() -> None:
    progress = PartitionProgress()
    progress.assigned([0, 1], now=0.0, committed={})
    progress.observed({1: (0, 0)}, {1: 0}, (), now=100.0)  # 0's leader away since assignment
    [stall] = progress.stalls(100.0, LIMIT, recovering=False, in_flight=[])
    assert (stall.partition, stall.lag, stall.reason) == (0, -1, StallReason.NOT_CONSUMING)


def test_an_outage_hiding_the_offsets_keeps_the_last_known_lag() -> None:
    progress = PartitionProgress()
    progress.assigned([0], now=0.0, committed={0: 10})
    progress.observed({0: (0, 50)}, {0: 50}, {0}, now=1.0)
    progress.observed({}, {}, {0}, now=2.0)  # the broker is away: no watermarks
    [stall] = progress.stalls(100.0, LIMIT, recovering=True, in_flight=[])
    assert (stall.lag, stall.reason) == (40, StallReason.RECOVERING)


def test_a_partition_whose_transactions_fail_stays_named_for_that_until_it_moves() -> None:
    # between a rewind and the next try nothing of it is in flight and the router is not
    # recovering: it must still be named for the failures (not "not_consuming"), with the error
    progress = PartitionProgress()
    progress.assigned([0, 1], now=0.0, committed={0: 0, 1: 0})
    progress.observed({0: (0, 5), 1: (0, 5)}, {}, (), now=1.0)
    progress.failed([0], "KafkaError{code=_MSG_TIMED_OUT}")
    stalls = progress.stalls(100.0, LIMIT, recovering=False, in_flight=[])
    assert [(s.partition, s.reason, s.error) for s in stalls] == [
        (0, StallReason.RECOVERING, "KafkaError{code=_MSG_TIMED_OUT}"),
        (1, StallReason.NOT_CONSUMING, None),
    ]
    assert stalls[0].as_dict()["error"] == "KafkaError{code=_MSG_TIMED_OUT}"
    progress.committed({0: 5}, now=101.0)
    progress.observed({0: (0, 9), 1: (0, 5)}, {}, (), now=102.0)  # new lag: not a failure
    stalls = progress.stalls(200.0, LIMIT, recovering=False, in_flight=[])
    assert [(s.partition, s.reason, s.error) for s in stalls] == [
        (0, StallReason.NOT_CONSUMING, None),
        (1, StallReason.NOT_CONSUMING, None),
    ]
