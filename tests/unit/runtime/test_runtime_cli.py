"""The root `loupe` command lists installed members and explains broken ones."""

from __future__ import annotations

import click
from click.testing import CliRunner

from loupe.runtime import cli


def test_help_lists_builtin_and_plugin_commands() -> None:
    result = CliRunner().invoke(cli.main, ["--help"])
    assert result.exit_code == 0, result.output
    for name in ("topics", "stack", "router", "bench"):
        assert name in result.output


def test_broken_plugin_fails_with_a_message(monkeypatch) -> None:
    class Broken:
        name = "broken"

        def load(self) -> object:
            raise ImportError("No module named 'loupe.nothing'")

    monkeypatch.setattr(cli._PluginGroup, "_entry_points", lambda self: {"broken": Broken()})
    result = CliRunner().invoke(cli.main, ["broken"])
    assert result.exit_code != 0
    assert "'loupe broken' cannot be loaded" in result.output


def test_non_command_plugin_is_refused(monkeypatch) -> None:
    class NotACommand:
        def load(self) -> object:
            return print

    monkeypatch.setattr(cli._PluginGroup, "_entry_points", lambda self: {"odd": NotACommand()})
    result = CliRunner().invoke(cli.main, ["odd"])
    assert result.exit_code != 0
    assert "is not a click command" in result.output
    assert isinstance(cli.main, click.Group)
