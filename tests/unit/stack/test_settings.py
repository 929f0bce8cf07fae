"""StackSettings defaults and environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from loupe.stack.settings import StackSettings


def test_defaults_follow_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    settings = StackSettings()
    assert settings.state_dir == tmp_path / "loupe" / "stack"
    assert settings.kafka_jar_dir == tmp_path / "loupe" / "kafka-jars" / "4.1.1"
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LOUPE_STACK_STATE_DIR", str(tmp_path / "s"))
    monkeypatch.setenv("LOUPE_STACK_KAFKA_PORT", "19092")
    monkeypatch.setenv("LOUPE_STACK_REDIS_PORT", "16379")
    monkeypatch.setenv("LOUPE_STACK_KAFKA_VERSION", "4.4.0")
    monkeypatch.setenv("LOUPE_TOPIC_PREFIX", "t1.")
    settings = StackSettings()
    assert settings.state_dir == tmp_path / "s"
    assert settings.kafka_bootstrap == "127.0.0.1:19092"
    assert settings.redis_url == "redis://127.0.0.1:16379/0"
    assert settings.kafka_jar_dir.name == "4.4.0"
    assert settings.topic_prefix == "t1."


def test_paths_are_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert StackSettings(state_dir=Path("~/st")).state_dir == tmp_path / "st"


def test_rejects_malformed_values() -> None:
    with pytest.raises(ValueError, match="kafka_version"):
        StackSettings(kafka_version="latest")
    with pytest.raises(ValueError, match="kafka_heap"):
        StackSettings(kafka_heap="lots")
    with pytest.raises(ValueError, match="connectable"):
        StackSettings(host="0.0.0.0")
