"""Gateway settings refuse combinations librdkafka would reject at start-up."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from loupe.gateway.consumer import live_consumer_config
from loupe.gateway.settings import GatewaySettings


def test_linger_must_be_shorter_than_the_acknowledgement_timeout() -> None:
    with pytest.raises(ValidationError, match="kafka_linger_ms must be shorter"):
        GatewaySettings(kafka_timeout_s=0.5, kafka_linger_ms=500)
    assert GatewaySettings(kafka_timeout_s=0.5, kafka_linger_ms=5).kafka_linger_ms == 5


def test_the_sweep_period_keeps_a_dead_clients_task_within_lease_plus_5s() -> None:
    """An expired lease is back after at most one sweep period (plus the sweep itself)."""
    with pytest.raises(ValidationError):
        GatewaySettings(sweep_interval_s=5.0)
    assert GatewaySettings(sweep_interval_s=4.0).sweep_interval_s == 4.0


def test_an_empty_token_pepper_is_reported_at_start_and_never_shown() -> None:
    """Without a pepper a leaked users file holds plain SHA-256-equivalent token hashes; the
    gateway still starts (development), but says so at every start."""
    weak = GatewaySettings(token_pepper=SecretStr("")).insecure_settings()
    assert len(weak) == 1 and "LOUPE_GATEWAY_TOKEN_PEPPER" in weak[0]
    assert GatewaySettings(token_pepper=SecretStr("p" * 32)).insecure_settings() == []
    short = GatewaySettings(token_pepper=SecretStr("tiny-pepper")).insecure_settings()
    assert len(short) == 1 and "tiny-pepper" not in short[0]


def test_a_dead_replicas_partitions_move_after_the_session_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The replicas share the live topics in one group: without a session timeout of its own
    the consumer used librdkafka's 45 s, so a killed replica's partitions stayed unread that
    long (hostile review of issue 12)."""
    assert live_consumer_config(GatewaySettings())["session.timeout.ms"] == 10_000
    monkeypatch.setenv("LOUPE_GATEWAY_SESSION_TIMEOUT_S", "7")
    config = live_consumer_config(GatewaySettings())
    assert config["session.timeout.ms"] == 7_000


def test_the_removed_claim_scan_limit_in_an_environment_does_not_stop_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Claims are bounded by the queues' layout now; a deployment's old setting is ignored."""
    monkeypatch.setenv("LOUPE_GATEWAY_CLAIM_SCAN_LIMIT", "2000")
    assert not hasattr(GatewaySettings(), "claim_scan_limit")
