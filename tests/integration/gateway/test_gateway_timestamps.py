"""Times in requests (``GET /v1/conflicts?before=``): naive or out-of-range times are a 422 in
the error shape, never a 500, and never read as the server's local time."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest

from harness.kafka import produce
from harness.samples import AT, conflict
from loupe.gateway.logic import Role
from loupe.schemas.topics import LABELS_CONFLICTS

REFUSED = [
    "0001-01-01T00:00:00",  # naive, and year 0 once a local offset is applied
    "2026-11-27T12:00:00",  # naive: which zone? refused rather than guessed
    "2026-11-27",  # a date: no time, no zone
    "0001-01-01T00:00:00+01:00",  # year 0 in UTC
    "9999-12-31T23:00:00-14:00",  # year 10000 in UTC
]


async def _conflict_seen(gateway, kafka_bootstrap, topic_prefix) -> None:
    record = conflict("a")
    produce(kafka_bootstrap, f"{topic_prefix}{LABELS_CONFLICTS.name}", [("a", record)])

    async def seen():
        return (await gateway.call("GET", "/v1/conflicts", "lee")).json()["conflicts"]

    await gateway.wait_for(seen, what="conflict consumed")


@pytest.mark.parametrize("before", REFUSED)
async def test_naive_or_out_of_range_before_is_a_422(
    gateway, kafka_bootstrap, topic_prefix, before
):
    gateway.add_user("lee", Role.LEAD)
    response = await gateway.call("GET", "/v1/conflicts", "lee", params={"before": before})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"][0]["loc"] == "query.before"


async def test_aware_before_pages_in_any_offset_and_at_the_calendar_ends(
    gateway, kafka_bootstrap, topic_prefix
):
    gateway.add_user("lee", Role.LEAD)
    await _conflict_seen(gateway, kafka_bootstrap, topic_prefix)

    async def ids(before: str) -> list[str]:
        response = await gateway.call("GET", "/v1/conflicts", "lee", params={"before": before})
        assert response.status_code == 200, response.text
        return [c["conflict_id"] for c in response.json()["conflicts"]]

    later, earlier = AT + timedelta(seconds=1), AT - timedelta(seconds=1)
    assert await ids(later.isoformat()) == ["c-1"]
    assert await ids(earlier.isoformat()) == []
    # the same instants written with other offsets page the same way
    assert await ids(later.strftime("%Y-%m-%dT%H:%M:%SZ")) == ["c-1"]
    plus_two = later.astimezone(timezone(timedelta(hours=2)))
    assert plus_two.isoformat().endswith("+02:00") and await ids(plus_two.isoformat()) == ["c-1"]
    assert await ids("0001-01-01T00:00:00Z") == []
    assert await ids("9999-12-31T23:59:59+00:00") == ["c-1"]
