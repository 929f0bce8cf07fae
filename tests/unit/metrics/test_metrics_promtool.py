"""Prometheus config and alert rules: promtool checks and the ``*_test.yml`` rule unit tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
RULE_TESTS = sorted(RULES.glob("*_test.yml"))


def promtool(*args: str | Path, cwd: Path = RULES) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *map(str, args)],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_promtool_is_installed() -> None:
    assert Path(PROMTOOL).exists(), "promtool (Debian package prometheus) is required"


def test_config_is_valid() -> None:
    result = promtool("check", "config", PROMETHEUS / "prometheus.yml", cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_files_are_valid() -> None:
    files = sorted(RULES.glob("*.rules.yml"))
    assert files
    result = promtool("check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_file_has_unit_tests() -> None:
    tested = {
        line.strip()[2:]
        for t in RULE_TESTS
        for line in t.read_text().splitlines()
        if line.strip().startswith("- ") and line.strip().endswith(".rules.yml")
    }
    assert tested == {f.name for f in RULES.glob("*.rules.yml")}


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda p: p.name)
def test_rule_unit_tests_pass(test_file: Path) -> None:
    result = promtool("test", "rules", test_file.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_catch_a_broken_threshold(tmp_path: Path) -> None:
    for path in [*RULES.glob("*.rules.yml"), *RULE_TESTS]:
        shutil.copy(path, tmp_path / path.name)
    rules = tmp_path / "loupe.rules.yml"
    rules.write_text(
        rules.read_text().replace(
            "loupe:consumer_lag:max > 10000", "loupe:consumer_lag:max > 100000"
        )
    )
    result = promtool("test", "rules", "loupe_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "LoupeConsumerLagHigh" in result.stdout + result.stderr
