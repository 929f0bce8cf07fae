"""Grafana dashboards and provisioning: well-formed, and every metric they use is exported."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

import loupe.gateway.metrics  # noqa: F401  (registers the gateway series)
from loupe.metrics.aggregate import MetricsState
from loupe.metrics.exporter import ServiceStatus
from loupe.metrics.queues import QueueStats
from loupe.metrics.scenario import build

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "deploy" / "grafana"
RULES = ROOT / "deploy" / "prometheus" / "rules"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
METRIC = re.compile(r"\b(loupe_[a-z0-9_]+|loupe:[a-z0-9_:]+)\b")


def expressions() -> list[tuple[str, str]]:
    found = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                found.append((f"{path.name}: {panel['title']}", target["expr"]))
    return found


def test_three_dashboards_with_the_promised_titles() -> None:
    titles = {json.loads(p.read_text())["title"] for p in DASHBOARDS}
    assert titles == {"Review quality", "Flow", "Cost"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_well_formed(path: Path) -> None:
    board = json.loads(path.read_text())
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    datasource = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    for panel in board["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid
            assert target["expr"].strip()


def test_provider_path_matches_compose_mount() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/loupe.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def _gateway_series() -> set[str]:
    """Series the gateway exports itself (alert rules may use them, e.g. its claim outcomes)."""
    families = [f for f in REGISTRY.collect() if f.name.startswith("loupe_gateway_")]
    return {f"{f.name}_total" if f.type == "counter" else f.name for f in families}


def test_every_metric_used_is_exported_or_recorded(scrape, feed) -> None:
    state = feed(MetricsState(), build(200).records)
    status = ServiceStatus(
        queues=QueueStats(depth={("p", "reviewer"): 1}, oldest_age_s={("p", "reviewer"): 1.0}),
        lag={("g", "predictions"): 3},
    )
    exported = {name for name, _ in scrape(state, status=status)} | _gateway_series()
    recorded = set()
    for path in RULES.glob("*.rules.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    recorded.add(rule["record"])
                for name in METRIC.findall(rule["expr"]):
                    assert name in exported or name.startswith("loupe:"), (path.name, name)
    for where, expr in expressions():
        for name in METRIC.findall(expr):
            assert name in exported | recorded, (where, name)
