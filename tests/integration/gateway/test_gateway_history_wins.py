"""A task the history shows settled is settled, even over a Redis that came back older (hostile
review of issue 12).

After a restored snapshot or a failover to a lagging replica, Redis may hold a task as open
that Kafka shows resolved since. The rebuild that follows used to keep Redis's state for every
task Redis knew ("live state wins"), so the settled task stayed open and queued: people were
asked to review an item already resolved, and its keys never expired. A task never reopens, so
that fact of the history now wins.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from loupe.gateway.projector import Projector
from loupe.runtime.gateway_queues import queue_projects_key
from loupe.schemas import ReviewRequest

KEEP_MS = 60_000


@pytest.fixture
def projector(redis_url: str) -> Iterator[tuple[redis.Redis, Projector, str]]:
    client = redis.Redis.from_url(redis_url)
    prefix = f"gw{uuid.uuid4().hex[:6]}:"
    try:
        yield client, Projector(client, prefix), prefix
    finally:
        client.close()


def test_a_task_the_history_shows_resolved_is_settled_not_kept_open(
    projector: tuple[redis.Redis, Projector, str], make_request: Callable[..., ReviewRequest]
) -> None:
    client, store, p = projector
    request = make_request("older-1", overlap=2)
    raw = request.to_json_bytes()
    assert store.request(request, raw)  # what the older Redis holds: open, nobody voted
    assert client.smembers(queue_projects_key(p, 1)) == {b"demo"}
    # the rebuild replays the history: two votes, then the label that resolved it
    assert not store.request(request, raw, status="resolved", done=2, keep_ms=KEEP_MS)
    task = client.hgetall(f"{p}t:{request.request_id}")
    assert task[b"status"] == b"resolved"
    assert client.smembers(queue_projects_key(p, 1)) == set()  # offered to nobody
    assert 0 < client.pttl(f"{p}t:{request.request_id}") <= KEEP_MS  # expires with its item
