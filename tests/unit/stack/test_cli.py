"""The ``stack`` click group on a stack that is not running."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from loupe.stack import settings as settings_module
from loupe.stack.cli import stack


@pytest.fixture(autouse=True)
def isolated_stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("LOUPE_STACK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LOUPE_STACK_KAFKA_PORT", "1")
    monkeypatch.setenv("LOUPE_STACK_REDIS_PORT", "2")
    settings_module.get_settings.cache_clear()
    yield
    settings_module.get_settings.cache_clear()


def test_group_has_the_subcommands() -> None:
    assert stack.name == "stack"
    assert set(stack.commands) == {"up", "down", "status", "install"}


def test_status_of_a_stopped_stack_exits_non_zero() -> None:
    result = CliRunner().invoke(stack, ["status"])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].split() == ["COMPONENT", "STATE", "PID", "ADDRESS", "VERSION"]
    assert lines[1].split()[:3] == ["kafka", "stopped", "-"]
    assert lines[2].split()[:3] == ["redis", "stopped", "-"]


def test_status_json() -> None:
    result = CliRunner().invoke(stack, ["status", "--json"])
    assert result.exit_code == 1
    parts = {part["name"]: part for part in json.loads(result.output)}
    assert parts["kafka"]["state"] == "stopped"
    assert parts["kafka"]["address"] == "127.0.0.1:1"
    assert parts["redis"]["address"] == "redis://127.0.0.1:2/0"


def test_down_of_a_stopped_stack_is_a_no_op() -> None:
    result = CliRunner().invoke(stack, ["down"])
    assert result.exit_code == 0
    assert "kafka: was not running" in result.output
