"""The /metrics + /healthz endpoint serves real HTTP on loopback."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter

from loupe.runtime.health import HealthServer


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.parametrize("healthy", [True, False])
def test_health_and_metrics(healthy: bool) -> None:
    registry = CollectorRegistry()
    Counter("loupe_test_events", "test counter", registry=registry).inc(3)
    server = HealthServer("127.0.0.1", 0, lambda: (healthy, {"lag": 0}), registry).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        status, body = _get(f"{base}/metrics")
        assert status == 200
        assert b"loupe_test_events_total 3.0" in body
        status, body = _get(f"{base}/healthz")
        assert status == (200 if healthy else 503)
        assert json.loads(body) == {"status": "ok" if healthy else "unhealthy", "lag": 0}
        assert _get(f"{base}/nope")[0] == 404
    finally:
        server.stop()
