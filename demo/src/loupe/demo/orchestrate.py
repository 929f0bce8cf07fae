"""Start and stop everything the demo runs: the local stack and the four services as processes.

Every service is a separate ``loupe <service>`` process configured through environment
variables only, with its output in ``<run dir>/logs/<service>.log``. On a secured stack each
service connects as its own Kafka user (``Infra.services``), granted only what the grant table
gives it for this run's names, and to Redis over TLS as its own ACL user (gateway, metrics;
the others get no Redis credentials). Stopping sends SIGTERM to
each process group (services in reverse start order), waits, then SIGKILLs whatever is left, and
finally stops the private stack, so nothing the demo started keeps running.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from loupe.demo.policy import PROJECT, policy_document
from loupe.demo.processes import OrchestrationError, ServiceProcess, loupe_command
from loupe.demo.prometheus import prometheus_process
from loupe.runtime.acls import (
    AclNames,
    Service,
    grant_services,
)
from loupe.runtime.connections import KafkaConnection, RedisConnection, process_env
from loupe.runtime.kafka import ensure_topics
from loupe.runtime.redis_acls import GATEWAY_REDIS_PREFIX
from loupe.schemas import ProjectPolicy
from loupe.stack import free_port

log = logging.getLogger(__name__)

SERVICES = ("router", "resolver", "metrics", "gateway")
GATEWAY_GROUP = "gateway"
"""The gateway's consumer group (it prefixes it with the topic prefix itself)."""


@dataclass(frozen=True)
class Infra:
    """Where Kafka and Redis are for this run."""

    kafka: KafkaConnection
    """The demo's own connection: topics, grants, the initial policy, the read-back watcher."""
    redis: RedisConnection
    kafka_version: str
    source: str
    services: Mapping[Service, KafkaConnection] = field(default_factory=dict)
    """A secured stack's connection for each service, as its own user; empty otherwise."""
    redis_services: Mapping[Service, RedisConnection] = field(default_factory=dict)
    """A secured stack's Redis connection for each service that uses Redis, as its own ACL
    user (the others get none); empty otherwise."""

    @property
    def per_service_users(self) -> bool:
        """Whether each service connects as a Kafka user of its own."""
        return bool(self.services)

    def kafka_for(self, service: Service) -> KafkaConnection:
        """How ``service`` connects: as its own user when there is one, else as the demo."""
        return self.services.get(service, self.kafka)

    def redis_for(self, service: Service) -> RedisConnection | None:
        """How ``service`` connects to Redis: as its own ACL user when there are per-service
        users (None: it has no business in Redis), else as the demo."""
        if self.per_service_users:
            return self.redis_services.get(service)
        return self.redis


@contextlib.contextmanager
def private_stack(state_dir: Path, prefix: str, *, secure: bool = False) -> Iterator[Infra]:
    """A private local stack (Kafka + Redis) on free loopback ports, stopped on exit.

    Its topics are created under ``prefix`` with one partition each. ``secure``: SASL_SSL
    Kafka with the authorizer on and a user per service, Redis over TLS with a password.
    """
    from loupe.stack import LocalStack, StackSettings  # noqa: PLC0415  (only when used)

    settings = StackSettings.private(
        state_dir, topic_partitions=1, topic_prefix=prefix, secure=secure
    )
    stack = LocalStack(settings)
    try:
        info = stack.up()
        source = "private secured local stack" if secure else "private local stack"
        yield Infra(
            info.kafka,
            info.redis,
            info.kafka_version,
            source,
            dict(info.services),
            dict(info.redis_services),
        )
    finally:
        stack.down()


@dataclass(frozen=True)
class Endpoints:
    """Where a person (or Prometheus) finds the running services."""

    gateway: str
    router_metrics: str
    resolver_metrics: str
    metrics: str
    prometheus: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        """JSON-ready form."""
        return dict(self.__dict__)


@dataclass
class Deployment:
    """The four services of one demo run, sharing a fresh topic prefix."""

    infra: Infra
    run_dir: Path
    prefix: str
    policy: ProjectPolicy
    services: list[ServiceProcess] = field(default_factory=list)
    endpoints: Endpoints | None = None

    @property
    def logs(self) -> Path:
        """Folder holding every service's log."""
        return self.run_dir / "logs"

    def service_env(self, service: Service) -> dict[str, str]:
        """Deployment-wide settings ``service`` gets, with its own connection's secrets."""
        redis = self.infra.redis_for(service)
        env = process_env(os.environ, self.infra.kafka_for(service), redis, no_redis=redis is None)
        env.update(
            {
                "LOUPE_TOPIC_PREFIX": self.prefix,
                "LOUPE_LOG_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def prepare(self) -> None:
        """Create this run's topics (one partition each), the router's policy file, the specs."""
        ensure_topics(self.infra.kafka, prefix=self.prefix, partitions=1)
        if self.infra.per_service_users:
            grant_services(self.infra.kafka, self.acl_names())
        policy_dir = self.run_dir / "policies"
        policy_dir.mkdir(parents=True, exist_ok=True)
        (policy_dir / f"{PROJECT}.json").write_text(
            json.dumps(policy_document(self.policy, version=1), indent=2)
        )
        self.services = self.service_specs()

    def acl_names(self) -> AclNames:
        """The names this run's services use, for their grants (``service_specs`` sets them)."""
        run = self.prefix.rstrip(".")
        return AclNames(
            topic_prefix=self.prefix,
            router_group=f"{run}-router",
            resolver_app_id=f"{run}-resolver",
            gateway_group=GATEWAY_GROUP,
            metrics_group=f"{run}-metrics",
            metrics_transactional_id=f"{run}-metrics-adaptive",
        )

    def service_specs(self) -> list[ServiceProcess]:
        """The four services with their per-service settings (free ports, run-scoped names)."""
        ports = {name: free_port() for name in (*SERVICES, "prometheus")}
        redis_prefix = f"{GATEWAY_REDIS_PREFIX}{self.prefix}"
        names = self.acl_names()
        specific: Mapping[str, dict[str, str]] = {
            "router": {
                "LOUPE_ROUTER_POLICY_DIR": str(self.run_dir / "policies"),
                "LOUPE_ROUTER_GROUP_ID": names.router_group,
                "LOUPE_ROUTER_INSTANCE_ID": "demo-0",
                "LOUPE_ROUTER_HEALTH_PORT": str(ports["router"]),
                "LOUPE_ROUTER_BATCH_TIMEOUT_MS": "50",
            },
            "resolver": {
                "LOUPE_RESOLVER_APP_ID": names.resolver_app_id,
                "LOUPE_RESOLVER_DATA_DIR": str(self.run_dir / "resolver-data"),
                "LOUPE_RESOLVER_HEALTH_PORT": str(ports["resolver"]),
                "LOUPE_RESOLVER_PARTITIONS": "1",
                "LOUPE_RESOLVER_SNAPSHOT_INTERVAL_S": "10",
            },
            "metrics": {
                "LOUPE_METRICS_METRICS_PORT": str(ports["metrics"]),
                "LOUPE_METRICS_GATEWAY_REDIS_PREFIX": redis_prefix,
                "LOUPE_METRICS_QUEUE_POLL_INTERVAL_S": "2",
                "LOUPE_METRICS_LAG_POLL_INTERVAL_S": "5",
                "LOUPE_METRICS_CONSUMER_GROUP": names.metrics_group,
                "LOUPE_METRICS_TRANSACTIONAL_ID": names.metrics_transactional_id,
                # The demo measures one fixed, tuned policy; the adaptive controller would move it.
                "LOUPE_METRICS_ADAPTIVE_ENABLED": "false",
            },
            "gateway": {
                "LOUPE_GATEWAY_PORT": str(ports["gateway"]),
                "LOUPE_GATEWAY_USERS_FILE": str(self.run_dir / "gateway-users.json"),
                "LOUPE_GATEWAY_REDIS_PREFIX": redis_prefix,
                "LOUPE_GATEWAY_CONSUMER_GROUP": names.gateway_group,
            },
        }
        host = "http://127.0.0.1"
        health = {
            "router": f"{host}:{ports['router']}/healthz",
            "resolver": f"{host}:{ports['resolver']}/healthz",
            "metrics": f"{host}:{ports['metrics']}/healthz",
            "gateway": f"{host}:{ports['gateway']}/healthz",
        }
        self.endpoints = Endpoints(
            gateway=f"{host}:{ports['gateway']}",
            router_metrics=f"{host}:{ports['router']}/metrics",
            resolver_metrics=f"{host}:{ports['resolver']}/metrics",
            metrics=f"{host}:{ports['metrics']}/metrics",
        )
        services = [
            ServiceProcess(
                name=name,
                command=[*loupe_command(), name],
                env={**self.service_env(Service(name)), **specific[name]},
                log_file=self.logs / f"{name}.log",
                health_url=health[name],
            )
            for name in SERVICES
        ]
        targets = {name: f"127.0.0.1:{ports[name]}" for name in SERVICES}
        # Prometheus only scrapes HTTP: no Loupe setting, so no connection's secret either.
        plain = {k: v for k, v in os.environ.items() if not k.startswith("LOUPE_")}
        scraper = prometheus_process(self.run_dir, targets, ports["prometheus"], plain)
        if scraper is not None:
            services.append(scraper)
            self.endpoints = replace(
                self.endpoints, prometheus=f"{host}:{ports['prometheus']}/graph"
            )
        return services

    def user_env(self) -> dict[str, str]:
        """Environment for ``loupe users`` (same users file and Redis as the gateway)."""
        return next(s for s in self.services if s.name == "gateway").env

    def add_admin(self, user_id: str = "demo-admin") -> str:
        """Create the admin account with ``loupe users add`` and return its token."""
        result = subprocess.run(
            [
                *loupe_command(),
                "users",
                "add",
                user_id,
                "--role",
                "admin",
                "--name",
                "Demo admin",
                "--project",
                "*",
                "--token",
            ],
            env=self.user_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise OrchestrationError(f"loupe users add failed: {result.stderr.strip()[-500:]}")
        lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
        if len(lines) < 2:
            raise OrchestrationError(f"loupe users add printed no token: {result.stdout!r}")
        return lines[-1]

    def start(self, timeout_s: float = 180.0, restarts: int = 2) -> None:
        """Start every service and wait until each is healthy.

        Like a process supervisor, a service that exits during start-up is restarted (at most
        ``restarts`` times) before the run fails.
        """
        for service in self.services:
            service.start()
        for service in self.services:
            for attempt in range(restarts + 1):
                try:
                    service.wait_healthy(timeout_s)
                    break
                except OrchestrationError:
                    if service.running() or attempt == restarts:
                        raise
                    log.warning("%s exited during start-up; restarting it", service.name)
                    service.start()

    def check_alive(self) -> list[str]:
        """Names of services that have exited."""
        return [s.name for s in self.services if s.process is not None and not s.running()]

    def stop(self) -> dict[str, int | None]:
        """Stop every service (reverse order); return their exit codes."""
        return {service.name: service.stop() for service in reversed(self.services)}
