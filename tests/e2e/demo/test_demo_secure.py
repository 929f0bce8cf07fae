"""`loupe demo --secure`: the main job end to end on the secured stack, and no secret printed.

The demo starts its own secured stack (SASL_SSL SCRAM Kafka with the authorizer on, Redis over
TLS with a password) and runs every service, and the model, as its own Kafka user with only its
grants: the run must settle like the plain demo's, the broker must have refused nothing, and
neither the demo's output nor any log may hold a password or a gateway token.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from loupe.runtime.acls import Service, principal

ITEMS = 140
"""A reduced stream (the demo takes 70 to 700): enough for every kind of review to happen."""
TOKEN = re.compile(r"lp_[A-Za-z0-9_-]{20,}")
"""A gateway API token (``loupe.gateway.users``)."""


def _secrets(run_dir: Path) -> list[str]:
    """Every password the run's stack made, and the human seat's token."""
    credentials = json.loads((run_dir / "stack" / "security" / "credentials.json").read_text())
    named = ("admin_password", "client_password", "redis_password")
    passwords = [credentials[key] for key in named]
    passwords += list(credentials["service_passwords"].values())
    assert len(passwords) == 3 + len(Service)
    return [*passwords, (run_dir / "you.token").read_text().strip()]


def _logs(run_dir: Path) -> list[Path]:
    """The services' logs and the stack's own (broker, Redis)."""
    stack = run_dir / "stack"
    return [
        *(run_dir / "logs").glob("*.log"),
        *(stack / "kafka" / "logs").glob("*.log*"),
        *(stack / "redis").glob("*.log"),
    ]


@pytest.mark.timeout(900)
def test_secure_demo_runs_the_loop_as_each_services_own_user(tmp_path: Path) -> None:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("LOUPE_KAFKA_", "LOUPE_REDIS_", "KAFKA_", "REDIS_"))
    }
    env["LOUPE_DEMO_HOME"] = str(tmp_path / "runs")
    loupe = Path(sys.executable).with_name("loupe")
    command = [str(loupe), "demo", "--secure", "--quick", "--json", "--items", str(ITEMS)]
    result = subprocess.run(
        [*command, "--timeout", "420"],
        env=env,
        capture_output=True,
        text=True,
        timeout=720,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one JSON line, got: {result.stdout[-2000:]}"
    report = json.loads(lines[0])

    # The same loop as the plain demo: predictions through review to resolved labels.
    assert report["completed"] is True
    assert report["items"] == report["resolved"] == ITEMS
    assert report["unresolved"] == 0
    assert report["auto_accepted"] + report["reviewed"] - report["spot_checked"] == ITEMS
    assert report["reviewed"] > 0 and report["review_votes"] > 0
    assert report["dlq"] == report["malformed_sent"] == 5
    assert report["final_error_rate"] < report["model_error_rate"]
    codes = report["service_exit_codes"]
    assert {"router", "resolver", "metrics", "gateway"} <= set(codes)
    assert all(code is not None for code in codes.values()), codes

    # On the secured stack, each as its own principal; the broker refused none of them.
    assert "private secured local stack, SASL_SSL" in result.stderr
    assert "Redis at rediss://" in result.stderr
    for service in Service:
        assert f"{service.value} as {principal(service)}" in result.stderr
    run_dir = Path(report["run_dir"])
    broker_log = (run_dir / "stack" / "kafka" / "logs" / "server.log").read_text()
    assert "StandardAuthorizer" in broker_log
    assert "is Denied" not in broker_log
    # Redis: the gateway and the metrics service as their own ACL users, never refused.
    service_logs = {path.name: path.read_text() for path in (run_dir / "logs").glob("*.log")}
    assert not {name for name, text in service_logs.items() if "NOPERM" in text}
    assert "cannot read queue depths" not in service_logs["metrics.log"]

    # Nothing printed or logged holds a secret; the human's token is in a 0600 file instead.
    assert (run_dir / "you.token").stat().st_mode & 0o777 == 0o600
    secrets = _secrets(run_dir)
    outputs = {
        "stdout": result.stdout,
        "stderr": result.stderr,
        "report.json": (run_dir / "report.json").read_text(),
    }
    logs = _logs(run_dir)
    assert {"router.log", "resolver.log", "metrics.log", "gateway.log", "server.log"} <= {
        path.name for path in logs
    }
    outputs.update({str(path): path.read_text(errors="replace") for path in logs})
    for where, text in outputs.items():
        assert not [s for s in secrets if s in text], f"a secret in {where}"
        assert not TOKEN.search(text), f"a gateway token in {where}"
