"""An optional Prometheus for a demo run: scrapes the four services with Loupe's rules.

Started only when a ``prometheus`` binary is installed (the local stack's system tools include
it); its UI is the demo's dashboard for the run's metrics.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

from loupe.demo.processes import ServiceProcess

RULES_DIR = Path(__file__).resolve().parents[4] / "deploy" / "prometheus" / "rules"
"""Loupe's recording rules and alerts, when running from the source tree."""


def scrape_config(targets: Mapping[str, str], rule_files: list[Path]) -> str:
    """A Prometheus config (JSON, which is YAML) scraping ``{job: host:port}`` every 5 s."""
    config = {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {"job_name": f"loupe-{name}", "static_configs": [{"targets": [target]}]}
            for name, target in sorted(targets.items())
        ],
    }
    return json.dumps(config, indent=2)


def prometheus_process(
    run_dir: Path, targets: Mapping[str, str], port: int, env: Mapping[str, str]
) -> ServiceProcess | None:
    """The Prometheus child process for this run, or None when Prometheus is not installed."""
    binary = shutil.which("prometheus")
    if binary is None:
        return None
    home = run_dir / "prometheus"
    home.mkdir(parents=True, exist_ok=True)
    rules = sorted(RULES_DIR.glob("*.rules.yml")) if RULES_DIR.is_dir() else []
    config_file = home / "prometheus.yml"
    config_file.write_text(scrape_config(targets, rules))
    return ServiceProcess(
        name="prometheus",
        command=[
            binary,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        env=dict(env),
        log_file=run_dir / "logs" / "prometheus.log",
        health_url=f"http://127.0.0.1:{port}/-/ready",
    )
