"""Gateway settings refuse combinations librdkafka would reject at start-up."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from loupe.gateway.settings import GatewaySettings


def test_linger_must_be_shorter_than_the_acknowledgement_timeout() -> None:
    with pytest.raises(ValidationError, match="kafka_linger_ms must be shorter"):
        GatewaySettings(kafka_timeout_s=0.5, kafka_linger_ms=500)
    assert GatewaySettings(kafka_timeout_s=0.5, kafka_linger_ms=5).kafka_linger_ms == 5
