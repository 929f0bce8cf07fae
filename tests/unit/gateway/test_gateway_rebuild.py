"""The rebuild's history index: the live projection's rules, in memory bounded by open work."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta

import orjson

from harness.samples import AT, classification, review_request
from loupe.gateway.rebuild import HistoryIndex
from loupe.schemas import (
    Action,
    ClassificationLabel,
    Provenance,
    ResolutionMethod,
    ResolvedLabel,
    ReviewDecision,
    ReviewerRef,
    ReviewRequest,
    Tier,
)


def request(item: str = "item-1", overlap: int = 2) -> ReviewRequest:
    return review_request(classification(item)).model_copy(update={"required_overlap": overlap})


def decision(reviewer, action=Action.APPROVE, item="item-1", n=0, final=False) -> bytes:
    return ReviewDecision(
        decision_id=f"d-{item}-{reviewer}-{n}",
        idempotency_key=f"k-{reviewer}-{n}",
        request_id=f"req-{item}",
        task_id=f"req-{item}",
        item_id=item,
        project="demo",
        reviewer=ReviewerRef(id=reviewer, tier=Tier.REVIEWER),
        action=action,
        label=ClassificationLabel(label="dog") if action is Action.APPROVE else None,
        seconds_spent=1.0,
        final=final,
        decided_at=AT,
    ).to_json_bytes()


def resolved(item="item-1", method=ResolutionMethod.WEIGHTED, delta_s=10, request_ids=()) -> bytes:
    return ResolvedLabel(
        item_id=item,
        project="demo",
        revision=2,
        label=ClassificationLabel(label="dog"),
        method=method,
        provenance=Provenance(prediction=classification(item), request_ids=list(request_ids)),
        first_seen_at=AT,
        resolved_at=AT + timedelta(seconds=delta_s),
    ).to_json_bytes()


def keyed(labels) -> list[tuple[str, bytes]]:
    """Label records as Kafka holds them: keyed by their item id."""
    return [(orjson.loads(raw)["item_id"], raw) for raw in labels]


def settle(requests, decisions=(), labels=()):
    with HistoryIndex() as index:
        index.add_decisions(list(decisions))
        index.add_resolved(keyed(labels))
        index.seal()
        tasks = index.settle([r.to_json_bytes() for r in requests])
        return {t.request.request_id: t for t in tasks}, index.quality()


def test_votes_are_counted_once_per_reviewer_and_skips_kept():
    r = request()
    tasks, quality = settle(
        [r, r],
        [decision("ann"), decision("ann"), decision("ann", n=1), decision("bob", Action.SKIP)],
    )
    task = tasks[r.request_id]
    assert (task.done, task.status, task.skippers) == (1, "open", ["bob"])
    assert [v.decision_id for v in task.votes] == ["d-item-1-ann-0"]
    assert quality["ann"].votes == 1 and quality["bob"].skips == 1
    tasks, _ = settle([r], [decision("ann"), decision("cy")])
    assert tasks[r.request_id].status == "complete"


def test_resolutions_and_final_calls_settle_tasks_automatic_labels_do_not():
    r = request()
    assert settle([r], labels=[resolved()])[0] == {}
    assert settle([r], labels=[resolved(delta_s=-10, request_ids=[r.request_id])])[0] == {}
    assert settle([r], [decision("lee", final=True)])[0] == {}
    assert r.request_id in settle([r], labels=[resolved(delta_s=-10)])[0]  # older than the task
    assert r.request_id in settle([r], labels=[resolved(method=ResolutionMethod.AUTO)])[0]


def _us(at: datetime) -> int:
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def test_tasks_settled_within_the_retention_window_are_kept_with_when_they_settled():
    r, label_at = request(), AT + timedelta(seconds=10)

    def kept(since: datetime, decisions=(), labels=()):
        with HistoryIndex(kept_since_us=_us(since)) as index:
            index.add_decisions(list(decisions))
            index.add_resolved(keyed(labels))
            index.seal()
            return {t.request.request_id: t for t in index.settle([r.to_json_bytes()])}

    by_label = kept(AT, [decision("ann")], [resolved()])[r.request_id]
    assert (by_label.status, by_label.settled_us, by_label.done) == ("resolved", _us(label_at), 1)
    by_final = kept(AT, [decision("lee", final=True)])[r.request_id]
    assert (by_final.status, by_final.settled_us) == ("closed", _us(AT))
    assert kept(label_at + timedelta(microseconds=1), labels=[resolved()]) == {}
    assert kept(AT + timedelta(seconds=1), [decision("lee", final=True)]) == {}
    still_open = kept(AT, labels=[resolved(method=ResolutionMethod.AUTO)])[r.request_id]
    assert (still_open.status, still_open.settled_us) == ("open", -1)


def test_votes_are_scored_against_the_items_latest_label():
    r = request()
    _, quality = settle([r], [decision("ann"), decision("bob", Action.REJECT)], [resolved()])
    assert (quality["ann"].scored, quality["ann"].agreed) == (1, 1)
    assert (quality["bob"].scored, quality["bob"].agreed) == (1, 0)


def _rebuild_peak(settled: int, open_tasks: int, batch: int = 500) -> int:
    """Peak Python memory of indexing and settling ``settled`` settled items of history plus
    ``open_tasks`` open ones, fed in batches as the rebuilder streams them."""
    open_requests = [request(f"open-{n}").to_json_bytes() for n in range(open_tasks)]

    def requests(start: int, stop: int) -> list[bytes]:
        return [request(f"done-{n}").to_json_bytes() for n in range(start, stop)]

    tracemalloc.start()
    try:
        with HistoryIndex(cache_kib=1024) as index:
            for start in range(0, settled, batch):
                stop = min(settled, start + batch)
                index.add_decisions(
                    [decision(f"r{n % 7}", item=f"done-{n}") for n in range(start, stop)]
                )
                index.add_resolved(keyed(resolved(f"done-{n}") for n in range(start, stop)))
            index.seal()
            kept = 0
            for start in range(0, settled, batch):
                kept += len(index.settle(requests(start, min(settled, start + batch))))
            kept += len(index.settle(open_requests))
            index.quality()
            assert kept == open_tasks
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_rebuild_memory_does_not_grow_with_history():
    small = _rebuild_peak(settled=2_000, open_tasks=300)
    large = _rebuild_peak(settled=8_000, open_tasks=300)
    # four times the history, the same open set: the same memory (a list of the topic would
    # take about four times as much)
    assert large / small < 1.3, (small, large)


def test_an_automatic_label_after_a_person_s_never_wins_the_rebuild() -> None:
    """Issue 11, point 3: the rebuild keeps an item's highest revision, so a re-prediction's
    automatic label (revision 1) read after a person's (revision 2) does not replace it."""
    human = resolved(method=ResolutionMethod.MAJORITY)
    automatic = (
        ResolvedLabel.model_validate_json(resolved(method=ResolutionMethod.AUTO))
        .model_copy(update={"revision": 1, "label": ClassificationLabel(label="cat")})
        .to_json_bytes()
    )
    with HistoryIndex() as index:
        index.add_resolved(keyed([human, automatic]))
        [(revision, raw)] = index.latest_resolved(["item-1"]).values()
    assert (revision, raw) == (2, human)


def test_a_label_keyed_by_another_item_is_a_bad_record_not_that_items_label() -> None:
    """The registry keys labels.resolved by item id and the live consumer selects labels by
    key: the rebuild holds a label keyed by another item as bad, as the consumer does."""
    with HistoryIndex() as index:
        index.add_resolved([("item-2", resolved("item-1")), ("item-3", resolved("item-3"))])
        latest = index.latest_resolved(["item-1", "item-2", "item-3"])
        assert (list(latest), index.bad) == (["item-3"], 1)


def test_decisions_indexed_in_a_part_settle_and_score_as_in_the_index_itself(tmp_path) -> None:
    """The rebuild's helper process indexes the decisions in a file of its own, which the index
    reads in place; the quality counters, computed on a thread with a connection of its own
    while the requests are settled, are the ones the index computes itself."""
    open_r, done_r = request("item-1"), request("item-2")
    votes = [decision("ann"), decision("bob", Action.SKIP), decision("cy", item="item-2")]
    votes.append(decision("dee", Action.REJECT, item="item-2", final=True))
    labels = [resolved("item-2", request_ids=["req-item-2"])]
    whole, whole_quality = settle([open_r, done_r], votes, labels)
    with HistoryIndex(path=tmp_path / "part.db") as part:
        part.add_decisions(votes)
        part.seal_decisions()
    with HistoryIndex() as index:
        index.add_resolved(keyed(labels))
        index.attach(tmp_path / "part.db")
        index.seal()
        quality = index.quality_aside()
        tasks = {t.request.request_id: t for t in index.settle([open_r.to_json_bytes()])}
        tasks |= {t.request.request_id: t for t in index.settle([done_r.to_json_bytes()])}
        assert quality.result(timeout=30) == whole_quality == index.quality()
    assert {k: (t.status, t.voters, t.skippers) for k, t in tasks.items()} == {
        k: (t.status, t.voters, t.skippers) for k, t in whole.items()
    }
    assert list(tasks) == ["req-item-1"] and tasks["req-item-1"].skippers == ["bob"]
