"""The per-token rate limit's pure parts: the setting's rate string and ``Retry-After``."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from loupe.gateway.ratelimit import parse_rate_limit, retry_after_s
from loupe.gateway.settings import GatewaySettings


def test_the_default_allows_a_person_in_the_ui_and_bounds_a_script() -> None:
    items = parse_rate_limit(GatewaySettings().rate_limit)
    per_second = {item.get_expiry(): item.amount for item in items}
    assert per_second == {1: 30}


def test_an_empty_setting_is_no_limit() -> None:
    assert parse_rate_limit("") == []
    assert GatewaySettings(rate_limit="  ").rate_limit == ""


def test_several_limits_and_multiples_parse() -> None:
    items = parse_rate_limit("3/5 seconds; 100/minute")
    assert [(item.amount, item.get_expiry()) for item in items] == [(3, 5), (100, 60)]


@pytest.mark.parametrize("spec", ["fast", "10", "10/fortnight", "-1/second", "0/second"])
def test_a_malformed_rate_string_is_refused_at_start(spec: str) -> None:
    with pytest.raises(ValidationError, match="rate limit"):
        GatewaySettings(rate_limit=spec)


@pytest.mark.parametrize(
    ("left_s", "expected"),
    [(0.0, 1), (0.2, 1), (1.0, 2), (4.9, 5), (59.0, 60)],
)
def test_retry_after_is_whole_seconds_never_early(left_s: float, expected: int) -> None:
    """``limits`` derives the reset from a TTL truncated to whole seconds: one more second, so
    a client that waits as told is not refused again."""
    assert retry_after_s(1_000.0 + left_s, 1_000.0) == expected


def test_retry_after_of_a_window_already_reset_is_one_second() -> None:
    assert retry_after_s(999.0, 1_000.0) == 1
