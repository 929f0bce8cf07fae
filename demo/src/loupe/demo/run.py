"""One demo run from start to report: infrastructure, services, model serving, crowd, progress."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import httpx

from loupe.demo.crowd import ReviewerProfile, default_crowd
from loupe.demo.model_serving import StreamConfig, build_stream, malformed_predictions
from loupe.demo.orchestrate import Deployment, Infra, private_stack
from loupe.demo.policy import PROJECT, PolicyKnobs, demo_policy
from loupe.demo.progress import TopicWatcher, metric_estimates, summarize
from loupe.demo.publish import PredictionStreamer, publish_policy
from loupe.demo.report import DemoReport, build_report
from loupe.demo.reviewers import Crowd, run_crowd
from loupe.runtime.acls import Service, principal
from loupe.runtime.settings import ServiceSettings
from loupe.schemas.topics import CONTROL_POLICY, PREDICTIONS
from loupe.stack.tls import write_file


@dataclass(frozen=True)
class DemoConfig:
    """Everything one run needs to know."""

    items: int = 700
    rate: float = 15.0
    """Predictions per second from model serving."""
    reviewers: int = 6
    seed: int = 7
    time_scale: float = 0.1
    """Real seconds per simulated second of a reviewer's think time."""
    malformed: int = 5
    infra: str = "local"
    """``local``: a private local stack; ``env``: Kafka/Redis from LOUPE_* / KAFKA_* / REDIS_URL."""
    secure: bool = False
    """With ``local``: the stack secured (SASL_SSL, ACLs, a Kafka user per service, Redis TLS)."""
    home: Path = Path(".loupe/demo")
    timeout_s: float = 900.0
    keep_running: bool = False
    human_reviewer: bool = True

    def stream_config(self) -> StreamConfig:
        """The prediction stream: familiar-only warm-up on the first 4/7 of the items."""
        return StreamConfig(items=self.items, warmup_items=self.items * 4 // 7, seed=self.seed)

    def policy_knobs(self) -> PolicyKnobs:
        """The policy, with the novelty warm-up scaled to the stream's warm-up prefix."""
        return PolicyKnobs(novelty_warmup=max(5, self.stream_config().warmup_items // 10))


@dataclass(frozen=True)
class RunResult:
    """The report plus where things were."""

    report: DemoReport
    run_dir: Path
    endpoints: dict[str, str | None]
    completed: bool
    exit_codes: dict[str, int | None]


Printer = Callable[[str], None]

SETTLE_S = 3.0
"""Quiet time (no new events) before a complete-looking run counts as settled."""
SPOT_CHECK_GRACE_S = 20.0
"""How long to wait, once all else settled, for spot checks nobody has been offered."""


@contextlib.contextmanager
def _infra(config: DemoConfig, run_dir: Path, prefix: str) -> Iterator[Infra]:
    if config.infra == "env":
        settings = ServiceSettings()
        yield Infra(settings.kafka, settings.redis, "external", "environment")
        return
    with private_stack(run_dir / "stack", prefix, secure=config.secure) as infra:
        yield infra


def _create_accounts(
    base_url: str, admin_token: str, crowd: list[ReviewerProfile], human: bool
) -> tuple[list[tuple[ReviewerProfile, str]], str | None]:
    """Create the crowd's accounts through the gateway's admin API; return their tokens."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30.0) as client:
        people = [(p.id, p.name, p.role, p.tier.value) for p in crowd]
        if human:
            people.append(("you", "You (human)", "lead", "lead"))
        tokens: dict[str, str] = {}
        for user_id, name, role, tier in people:
            created = client.post(
                "/v1/users",
                json={
                    "id": user_id,
                    "name": name,
                    "role": role,
                    "tier": tier,
                    "projects": [PROJECT],
                },
            )
            if created.status_code not in (201, 409):
                raise RuntimeError(f"creating user {user_id}: {created.status_code} {created.text}")
            issued = client.post(f"/v1/users/{user_id}/tokens", json={"name": "demo"})
            if issued.status_code != 201:
                raise RuntimeError(f"token for {user_id}: {issued.status_code} {issued.text}")
            tokens[user_id] = issued.json()["token"]
    members = [(profile, tokens[profile.id]) for profile in crowd]
    return members, tokens.get("you")


def _enrol_people(
    config: DemoConfig, deployment: Deployment, printer: Printer
) -> list[tuple[ReviewerProfile, str]]:
    """Create the admin, the crowd and a human seat; print where to find everything."""
    endpoints = deployment.endpoints
    assert endpoints is not None
    admin_token = deployment.add_admin()
    members, human_token = _create_accounts(
        endpoints.gateway, admin_token, default_crowd(config.reviewers), config.human_reviewer
    )
    printer(f"reviewer UI and API: {endpoints.gateway}/")
    if human_token and config.secure:
        # A secured run keeps secrets out of terminals and CI logs: the token goes to a file.
        token_file = deployment.run_dir / "you.token"
        write_file(token_file, (human_token + "\n").encode(), private=True)
        printer(f"  join as a lead reviewer with the token in {token_file}")
    elif human_token:
        printer(f"  join as a lead reviewer with token: {human_token}")
    printer(
        f"metrics: {endpoints.metrics} (quality, flow, cost) · router {endpoints.router_metrics}"
        f" · resolver {endpoints.resolver_metrics} · gateway {endpoints.gateway}/metrics"
    )
    if endpoints.prometheus:
        printer(
            f"Prometheus (all four services, Loupe's recording rules and alerts): "
            f"{endpoints.prometheus}?g0.expr=loupe_model_error_rate_reviewed"
        )
    printer(f"logs: {deployment.logs}")
    return members


@dataclass
class _Live:
    """The moving parts of a run that the watch loop checks on."""

    deployment: Deployment
    watcher: TopicWatcher
    streamer: PredictionStreamer
    truth: dict[str, str]
    predicted: dict[str, str]
    metrics_url: str


async def _fetch_estimates(url: str) -> dict[str, float]:
    """The metrics service's current estimates (empty when it does not answer)."""
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            response = await client.get(url)
    except httpx.HTTPError:
        return {}
    return metric_estimates(response.text, PROJECT) if response.status_code == 200 else {}


async def _watch_until_settled(
    config: DemoConfig, live: _Live, printer: Printer, interrupted: asyncio.Event
) -> bool:
    """Print progress until every item is settled; False on timeout or interrupt."""
    started = time.monotonic()
    last_print = -1e9
    interactive = sys.stdout.isatty()
    expected = len(live.truth)
    estimates: dict[str, float] = {}
    while not interrupted.is_set():
        if live.streamer.error is not None:
            raise RuntimeError(f"model serving failed: {live.streamer.error}")
        dead = live.deployment.check_alive()
        if dead:
            raise RuntimeError(f"service(s) exited: {', '.join(dead)}; see {live.deployment.logs}")
        progress = summarize(
            live.watcher.observed(),
            items_in=live.streamer.sent,
            truth=live.truth,
            predicted=live.predicted,
        )
        elapsed = time.monotonic() - started
        quiet_s = time.monotonic() - live.watcher.last_event_at
        if progress.complete(expected) and quiet_s > SETTLE_S:
            return True
        if progress.complete(expected, spot_checks_optional=True) and quiet_s > SPOT_CHECK_GRACE_S:
            printer(
                f"{progress.open_spot_checks} spot-check task(s) were not offered to reviewers "
                f"within {SPOT_CHECK_GRACE_S:.0f} s of quiet; their auto labels stand"
            )
            return True
        if elapsed > config.timeout_s:
            printer(f"timed out after {config.timeout_s:.0f} s; reporting what settled")
            return False
        if elapsed - last_print >= (1.0 if interactive else 5.0):
            estimates = await _fetch_estimates(live.metrics_url) or estimates
            line = progress.line(elapsed, expected, estimates)
            printer(f"\r{line}" if interactive else line)
            last_print = elapsed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(interrupted.wait(), timeout=0.5)
    return False


async def _drive(
    config: DemoConfig,
    deployment: Deployment,
    printer: Printer,
    interrupted: asyncio.Event,
) -> tuple[DemoReport, bool]:
    """Stream, review and watch until every item is settled (or time/interrupt ends it)."""
    stream = build_stream(config.stream_config())
    members = _enrol_people(config, deployment, printer)
    endpoints = deployment.endpoints
    assert endpoints is not None
    kafka = deployment.infra.kafka
    live = _Live(
        deployment=deployment,
        watcher=TopicWatcher(kafka, deployment.prefix).start(),
        streamer=PredictionStreamer(
            deployment.infra.kafka_for(Service.MODEL),
            PREDICTIONS.full_name(deployment.prefix),
            stream,
            project=PROJECT,
            rate=config.rate,
            malformed=malformed_predictions(PROJECT, config.malformed),
        ).start(),
        truth=stream.truth(),
        predicted={item.item_id: item.predicted for item in stream.items},
        metrics_url=endpoints.metrics,
    )
    stop_crowd = asyncio.Event()
    crowd_task = asyncio.create_task(
        run_crowd(
            endpoints.gateway,
            Crowd(members),
            truth=live.truth,
            project=PROJECT,
            time_scale=config.time_scale,
            stop=stop_crowd,
            seed=config.seed,
        )
    )
    started = time.monotonic()
    try:
        completed = await _watch_until_settled(config, live, printer, interrupted)
    finally:
        stop_crowd.set()
        live.streamer.stop()
        await crowd_task
        elapsed = time.monotonic() - started
        observed = live.watcher.observed()
        live.watcher.stop()
    if sys.stdout.isatty():
        printer("")
    report = build_report(
        truth=live.truth,
        predicted=live.predicted,
        held_out_class=stream.model.held_out,
        observed=observed,
        malformed_sent=live.streamer.malformed_sent,
        elapsed_s=elapsed,
    )
    return report, completed


async def _wait_for_interrupt(
    interrupted: asyncio.Event, printer: Printer, deployment: Deployment
) -> None:
    endpoints = deployment.endpoints
    where = f" (reviewer UI {endpoints.gateway}/)" if endpoints else ""
    printer(f"still running{where} (--keep-running): press Ctrl-C to stop everything")
    await interrupted.wait()


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_demo(
    config: DemoConfig,
    printer: Printer,
    on_report: Callable[[DemoReport], None] | None = None,
) -> RunResult:
    """Run the demo end to end; whatever happens, stop everything it started.

    ``on_report`` gets the report as soon as the loop settled (before ``keep_running`` waits).
    """
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
    run_dir = (config.home / run_id).absolute()
    run_dir.mkdir(parents=True, exist_ok=True)
    prefix = f"demo-{run_id}."
    loop = asyncio.new_event_loop()
    interrupted = asyncio.Event()
    # During start-up, SIGTERM interrupts like Ctrl-C (KeyboardInterrupt), so the finally blocks
    # below stop whatever was already started; once the loop runs, both end it gracefully.
    previous_term = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with _infra(config, run_dir, prefix) as infra:
            printer(
                f"Kafka {infra.kafka_version} at {infra.kafka.bootstrap_servers} "
                f"({infra.source}, {infra.kafka.security_protocol}), "
                f"Redis at {infra.redis.url}; topic prefix {prefix}"
            )
            if infra.per_service_users:
                users = ", ".join(f"{s.value} as {principal(s)}" for s in Service)
                printer(f"each service as its own Kafka principal, with only its grants: {users}")
            policy = demo_policy(config.policy_knobs())
            deployment = Deployment(infra, run_dir, prefix, policy)
            try:
                deployment.prepare()
                publish_policy(infra.kafka, CONTROL_POLICY.full_name(prefix), policy, version=1)
                deployment.start()
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(signum, interrupted.set)
                report, completed = loop.run_until_complete(
                    _drive(config, deployment, printer, interrupted)
                )
                if on_report is not None:
                    on_report(report)
                if config.keep_running and not interrupted.is_set():
                    loop.run_until_complete(_wait_for_interrupt(interrupted, printer, deployment))
            finally:
                exit_codes = deployment.stop()
        endpoints = deployment.endpoints.as_dict() if deployment.endpoints else {}
        return RunResult(report, run_dir, endpoints, completed, exit_codes)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        signal.signal(signal.SIGTERM, previous_term)
        loop.close()


def echo_to(stream: TextIO) -> Printer:
    """A printer writing lines (or ``\\r`` status updates) to ``stream``."""

    def printer(text: str) -> None:
        end = "" if text.startswith("\r") else "\n"
        stream.write(text + end)
        stream.flush()

    return printer
