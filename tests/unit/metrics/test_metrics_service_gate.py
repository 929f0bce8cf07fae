"""While replaying at start-up, the service shows only its own metrics (no partial totals)."""

from __future__ import annotations

from loupe.metrics.scenario import build
from loupe.metrics.service import MetricsService
from loupe.metrics.settings import MetricsSettings


def test_data_metrics_appear_only_once_caught_up(feed) -> None:
    service = MetricsService(MetricsSettings(kafka_bootstrap_servers="127.0.0.1:1"))
    feed(service.state, build(50).records)
    replaying = {family.name for family in service.families()}
    assert "loupe_metrics_caught_up" in replaying and "loupe_metrics_events" in replaying
    assert "loupe_predictions" not in replaying
    service.status.caught_up = True
    live = {family.name for family in service.families()}
    assert {"loupe_predictions", "loupe_spot_check_error_rate", "loupe_metrics_events"} <= live
