"""A running metrics service fed the scripted run through a real broker, with a seeded gateway
Redis, a consumer group with lag, and a real Prometheus scraping it (one run per session)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, TopicPartition

from harness.infra import Infra
from harness.waiting import wait_for
from loupe.metrics.scenario import PROJECT, Scenario, build
from loupe.metrics.service import MetricsService
from loupe.metrics.settings import MetricsSettings
from loupe.metrics.smoke import publish_scenario, scrape
from loupe.runtime.connections import KafkaConnection, RedisConnection, redis_kwargs
from loupe.runtime.gateway_queues import (
    queue_index_key,
    queue_key,
    queue_projects_key,
    task_key,
)
from loupe.runtime.health import HealthServer
from loupe.runtime.kafka import client_config, ensure_topics
from loupe.schemas.topics import PREDICTIONS
from loupe.stack import free_port

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "deploy" / "prometheus" / "rules"
PROMETHEUS = "/usr/bin/prometheus"
QUEUED_AGE_S = 7_200

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def consumed(url: str) -> float:
    """Records the service has folded in (any outcome), from its own counter."""
    return sum(
        value for (name, _), value in scrape(url).items() if name == "loupe_metrics_events_total"
    )


def scraped(prometheus_url: str, expr: str) -> float:
    """The value Prometheus holds for a scalar-like ``expr`` now (-1 when it has none yet)."""
    query = urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(f"{prometheus_url}/api/v1/query?{query}", timeout=10) as answer:
        result = json.loads(answer.read())["data"]["result"]
    return float(result[0]["value"][1]) if result else -1.0


class RunningService:
    """The metrics service on a background thread with its /metrics server on a free port."""

    def __init__(self, settings: MetricsSettings, port: int = 0) -> None:
        self.service = MetricsService(settings)
        self.server = HealthServer("127.0.0.1", port, self.service.health, self.service.registry)
        self.server.start()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.service.run, args=(self.stop,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/metrics"

    def close(self) -> None:
        self.stop.set()
        self.thread.join(60)
        self.server.stop()
        assert not self.thread.is_alive(), "the service did not stop"


@dataclass
class MetricsRun:
    infra: Infra
    prefix: str
    settings: MetricsSettings
    scenario: Scenario
    service: RunningService
    prometheus_url: str
    lag_group: str

    scrape = staticmethod(scrape)
    wait_for = staticmethod(wait_for)
    consumed = staticmethod(consumed)

    def samples(self) -> Samples:
        """The running service's current samples."""
        return scrape(self.service.url)

    def restart(self) -> None:
        """Stop the service and start a fresh instance on the same port (Prometheus's target)."""
        port = self.service.server.port
        self.service.close()
        self.service = RunningService(self.settings, port)


def _seed_gateway_queues(connection: RedisConnection, prefix: str) -> None:
    client = redis.Redis.from_url(**redis_kwargs(connection))
    now_ms = int(time.time() * 1000)
    tasks = {
        "t-old": (1, now_ms - QUEUED_AGE_S * 1000, "open"),
        "t-new": (1, now_ms - 10_000, "open"),
        "t-done": (1, now_ms - 99_000_000, "complete"),
        "t-senior": (2, now_ms - 60_000, "open"),
    }
    for task_id, (rank, created_ms, status) in tasks.items():
        client.hset(
            task_key(prefix, task_id),
            mapping={"project": PROJECT, "status": status, "created_ms": created_ms},
        )
        client.zadd(queue_key(prefix, rank, PROJECT, "f[]"), {task_id: created_ms})
        client.sadd(queue_index_key(prefix, rank, PROJECT), "f[]")
        client.sadd(queue_projects_key(prefix, rank), PROJECT)
    client.close()


def _commit_lagging_group(kafka: KafkaConnection, group: str, topic: str) -> None:
    consumer = Consumer(client_config(kafka, {"group.id": group}))
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    consumer.commit(
        offsets=[TopicPartition(topic, number, 0) for number in partitions], asynchronous=False
    )
    consumer.close()


def _start_prometheus(tmp: Path, target: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {RULES}/*.rules.yml\n"
        "scrape_configs:\n  - job_name: loupe-metrics\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    log = (tmp / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.poll() is None, (tmp / "prometheus.log").read_text()
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    wait_for(ready, 60, "prometheus to be ready")
    return process, url


@pytest.fixture(scope="session")
def metrics_run(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsRun]:
    prefix = f"m{uuid.uuid4().hex[:10]}."
    ensure_topics(infra.kafka, prefix=prefix)
    gateway_prefix = f"{prefix}gw:"
    _seed_gateway_queues(infra.redis, gateway_prefix)
    lag_group = f"{prefix}router"
    _commit_lagging_group(infra.kafka, lag_group, f"{prefix}{PREDICTIONS.name}")
    settings = MetricsSettings(
        kafka=infra.kafka,
        redis=infra.redis,
        topic_prefix=prefix,
        metrics_port=0,
        consumer_group=f"{prefix}metrics",
        gateway_redis_prefix=gateway_prefix,
        queue_poll_interval_s=0.5,
        lag_poll_interval_s=1.0,
        lag_groups=[lag_group],
        adaptive_interval_s=1.0,
        transactional_id=f"{prefix}metrics-adaptive",
    )
    scenario = build(1_000)
    service = RunningService(settings)
    process, prometheus_url = _start_prometheus(
        tmp_path_factory.mktemp("prometheus"), f"127.0.0.1:{service.server.port}"
    )
    try:
        half = len(scenario.records) // 2
        phases = ((scenario.records[:half], half), (scenario.records[half:], len(scenario.records)))
        for records, produced in phases:
            # the policy (first record) is read before any prediction, as in production
            publish_scenario(settings, Scenario(records, scenario.expected), service.url, 120)
            wait_for(lambda n=produced: consumed(service.url) >= n, 120, f"{produced} records")
            # Prometheus must scrape each phase's totals, so every rate() over the run is non-zero.
            exported = consumed(service.url)
            wait_for(
                lambda n=exported: scraped(prometheus_url, "sum(loupe_metrics_events_total)") >= n,
                120,
                f"Prometheus scraping {exported:.0f} events",
            )
        run = MetricsRun(infra, prefix, settings, scenario, service, prometheus_url, lag_group)
        yield run
        service = run.service  # the instance running now (tests may restart it)
    finally:
        service.close()
        process.terminate()
        process.wait(30)
