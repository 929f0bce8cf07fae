"""``loupe demo`` options that are refused before anything starts."""

from __future__ import annotations

from click.testing import CliRunner

from loupe.demo.cli import demo


def test_secure_is_refused_with_an_existing_cluster() -> None:
    """``--secure`` secures the demo's own stack; an existing cluster's variables say how to
    connect to it, so the two together are a usage error, not a silently plain run."""
    result = CliRunner().invoke(demo, ["--secure", "--infra", "env"])
    assert result.exit_code == 2
    assert "--secure secures the demo's own stack" in result.output
