"""Router settings: env names, derived names."""

from __future__ import annotations

import pytest

from loupe.router.settings import RouterSettings


def test_env_names_and_derived_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOUPE_TOPIC_PREFIX", "stage.")
    monkeypatch.setenv("LOUPE_ROUTER_GROUP_ID", "rt")
    monkeypatch.setenv("LOUPE_ROUTER_INSTANCE_ID", "pod-3")
    monkeypatch.setenv("LOUPE_ROUTER_METRICS_PORT", "9310")
    settings = RouterSettings()
    assert settings.transactional_id == "rt-pod-3"
    assert settings.state_topic == "stage.rt.state"
    assert settings.health_port == 9310
    monkeypatch.setenv("LOUPE_ROUTER_HEALTH_PORT", "9311")
    assert RouterSettings().health_port == 9311


def test_instance_id_must_be_a_plain_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOUPE_ROUTER_INSTANCE_ID", "has space")
    with pytest.raises(ValueError, match="instance_id"):
        RouterSettings()


def test_session_timeout_stays_within_what_the_broker_accepts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert RouterSettings().session_timeout_s == 10.0
    monkeypatch.setenv("LOUPE_ROUTER_SESSION_TIMEOUT_S", "5")
    with pytest.raises(ValueError, match="session_timeout_s"):
        RouterSettings()
