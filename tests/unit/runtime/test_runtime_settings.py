"""Deployment-wide settings resolve from the documented environment variables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from loupe.runtime.settings import ServiceSettings


def test_defaults_point_at_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "KAFKA_BOOTSTRAP_SERVERS",
        "LOUPE_KAFKA_BOOTSTRAP_SERVERS",
        "REDIS_URL",
        "LOUPE_REDIS_URL",
        "LOUPE_TOPIC_PREFIX",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = ServiceSettings()
    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert settings.redis_url.startswith("redis://127.0.0.1:")
    assert settings.topic("predictions") == "predictions"


def test_generic_and_loupe_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:9092")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/2")
    monkeypatch.setenv("LOUPE_TOPIC_PREFIX", "staging.")
    settings = ServiceSettings()
    assert settings.kafka_bootstrap_servers == "broker:9092"
    assert settings.redis_url == "redis://cache:6379/2"
    assert settings.topic("audit") == "staging.audit"
    monkeypatch.setenv("LOUPE_KAFKA_BOOTSTRAP_SERVERS", "preferred:9092")
    assert ServiceSettings().kafka_bootstrap_servers == "preferred:9092"


def test_topic_prefix_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOUPE_TOPIC_PREFIX", "bad prefix!")
    with pytest.raises(ValidationError):
        ServiceSettings()
