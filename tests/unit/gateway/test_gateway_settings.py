"""Gateway settings refuse combinations librdkafka would reject at start-up."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

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
