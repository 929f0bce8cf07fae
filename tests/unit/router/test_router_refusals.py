"""How the router replays an input whose output the broker refused (``refusals``)."""

from __future__ import annotations

from confluent_kafka import KafkaError
from hypothesis import given
from hypothesis import strategies as st

from loupe.router.refusals import Delivery, Receipt, Refusal, RefusalBook, Verdict
from loupe.schemas import ErrorKind

TOO_LARGE = Refusal("labels.resolved", 60_000, ErrorKind.TOO_LARGE, "MSG_SIZE_TOO_LARGE")


def refused(source: tuple[int, int], verdict: Verdict, *, alone: bool) -> Delivery:
    return Delivery(source, verdict, alone, TOO_LARGE)


def test_a_record_refused_in_a_shared_batch_is_replayed_alone_before_it_is_condemned() -> None:
    book = RefusalBook()
    book.refused([refused((0, 5), Verdict.ROUTE, alone=False)])
    assert book.verdict((0, 5)) == (Verdict.ISOLATE, TOO_LARGE)
    book.refused([refused((0, 5), Verdict.ISOLATE, alone=True)])
    assert book.verdict((0, 5)) == (Verdict.DEAD_LETTER, TOO_LARGE)
    book.refused([refused((0, 5), Verdict.DEAD_LETTER, alone=True)])
    assert book.verdict((0, 5))[0] is Verdict.DROP
    assert book.verdict((0, 6)) == (Verdict.ROUTE, None)


def test_a_record_the_producer_refuses_itself_is_condemned_at_once() -> None:
    refusals: list[Delivery] = []
    receipt = Receipt(refusals, (1, 9), Verdict.ROUTE, False, "labels.resolved", 2_000_000)
    receipt.refused_by_producer(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    book = RefusalBook()
    book.refused(refusals)
    verdict, refusal = book.verdict((1, 9))
    assert verdict is Verdict.DEAD_LETTER
    assert refusal is not None and refusal.kind is ErrorKind.TOO_LARGE
    assert "labels.resolved record (2,000,000 bytes) was refused by the broker" in refusal.reason()


def test_only_errors_about_one_record_are_noted() -> None:
    refusals: list[Delivery] = []
    receipt = Receipt(refusals, (0, 1), Verdict.ROUTE, False, "t", 10)
    for code in (
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.PRODUCER_FENCED,
        KafkaError._PURGE_QUEUE,
        KafkaError.INVALID_TIMESTAMP,  # this pod's clock is skewed: retry, never dead-letter
        KafkaError.INVALID_MSG,  # a checksum failed in transit
    ):
        receipt(KafkaError(code), None)
    receipt(None, None)
    assert refusals == []
    receipt(KafkaError(KafkaError.INVALID_RECORD), None)
    receipt(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), None)
    assert [d.refusal.kind for d in refusals] == [ErrorKind.REFUSED_BY_BROKER, ErrorKind.TOO_LARGE]


def test_a_verdict_never_goes_back_within_a_replay() -> None:
    book = RefusalBook()
    book.refused([refused((0, 1), Verdict.ISOLATE, alone=True)])
    book.refused([refused((0, 1), Verdict.ROUTE, alone=False)])  # a late report of an earlier try
    assert book.verdict((0, 1))[0] is Verdict.DEAD_LETTER


@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 1_000), st.sampled_from(list(Verdict))),
        max_size=200,
    ),
    st.dictionaries(st.integers(0, 3), st.integers(0, 1_001)),
    st.sets(st.integers(0, 3)),
)
def test_the_book_forgets_what_was_committed_and_what_moved_away(
    entries: list[tuple[int, int, Verdict]], committed: dict[int, int], revoked: set[int]
) -> None:
    book = RefusalBook()
    book.refused(refused((p, o), v, alone=o % 2 == 0) for p, o, v in entries)
    book.committed(committed)
    book.forget(revoked)
    for partition, offset, _ in entries:
        kept = book.verdict((partition, offset))[0] is not Verdict.ROUTE
        done = offset < committed.get(partition, 0) or partition in revoked
        assert kept is not done
    assert len(book) <= len({(p, o) for p, o, _ in entries})
