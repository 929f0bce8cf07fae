"""`loupe demo --quick --json` against the session's real Kafka and Redis: the whole loop works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.infra import Infra
from loupe.runtime.connections import process_env

REQUIRED = {
    "items",
    "auto_accepted",
    "reviewed",
    "dlq",
    "model_error_rate",
    "final_error_rate",
    "review_fraction",
    "disagreement_rate",
    "elapsed_s",
    "novel_caught",
    "novel_caught_rate",
    "held_out_items",
    "reviewers",
}


@pytest.mark.timeout(900)
def test_quick_demo_meets_the_acceptance_relations(infra: Infra, tmp_path: Path) -> None:
    env = {
        **process_env(os.environ, infra.kafka, infra.redis),
        "LOUPE_DEMO_HOME": str(tmp_path / "runs"),
    }
    loupe = Path(sys.executable).with_name("loupe")
    result = subprocess.run(
        [str(loupe), "demo", "--quick", "--json", "--infra", "env", "--timeout", "420"],
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one JSON line, got: {result.stdout[-2000:]}"
    report = json.loads(lines[0])

    assert set(report) >= REQUIRED, sorted(REQUIRED - set(report))
    assert report["completed"] is True
    assert report["items"] == 700
    assert report["unresolved"] == 0
    assert report["auto_accepted"] + report["reviewed"] - report["spot_checked"] == 700
    assert report["dlq"] == report["malformed_sent"] == 5

    # The two acceptance relations.
    assert report["model_error_rate"] > 0.05
    assert report["final_error_rate"] <= report["model_error_rate"] / 5
    assert report["review_fraction"] <= 0.20

    # The held-out class is caught as novel; the careless reviewer stands out.
    assert report["novel_caught_rate"] >= 0.5
    assert report["held_out_reviewed"] >= 0.85 * report["held_out_items"]
    assert report["careless_reviewer"] == "cal"

    # Every service the demo started has exited.
    codes = report["service_exit_codes"]
    assert {"router", "resolver", "metrics", "gateway"} <= set(codes)
    assert all(code is not None for code in codes.values()), codes
