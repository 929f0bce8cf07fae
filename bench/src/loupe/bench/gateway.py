"""``loupe bench gateway``: claim + decision cycles through one gateway process over loopback HTTP.

The gateway runs as its own process (``loupe gateway``, uvicorn + uvloop) against real Redis and
Kafka; ``--reviewers`` concurrent clients (split over ``--client-procs`` processes using a lean
keep-alive HTTP client) loop claim → decision (approve). After a short unmeasured warm-up, two
phases share the tasks:

* full speed: half of them as fast as the reviewers can go — capacity (``cycles_per_s``) and
  latency at saturation, where a closed loop makes latency reviewers ÷ throughput;
* paced: the other half started on a fixed schedule at the target rate (open loop, 1,000
  cycles/s) — the latency a reviewer sees while the gateway serves that rate (``paced_*``).

The baseline, measured in the same run with the same clients and connections, is the cheapest
authenticated request (``GET /v1/me``: token check plus one Redis pipeline); the ratio says how
close a full cycle (Lua claim, Lua begin + commit, Kafka acknowledgement) gets to two of those.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import logging
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import httpx
import numpy as np
import uvloop
from confluent_kafka import Producer

from loupe.bench.http_load import Connection
from loupe.bench.infra import bench_infra
from loupe.gateway.logic import Role
from loupe.gateway.users import User, UsersFile
from loupe.runtime.kafka import ensure_topics, producer_config
from loupe.schemas import (
    ClassificationLabel,
    LabelSchemaRef,
    ModelRef,
    Prediction,
    ReasonCode,
    ReviewReason,
    ReviewRequest,
    TaskType,
    Tier,
)
from loupe.schemas.topics import REVIEW_REQUESTS
from loupe.stack import free_port

CLASSES = ["cat", "dog", "fox"]
PEPPER = "bench-pepper"
TARGET_CYCLES_PER_S = 1_000
TARGET_P99_MS = 50.0


def make_requests(count: int) -> Iterator[ReviewRequest]:
    """Review requests with spread priorities and ages (overlap 1: one cycle per task)."""
    base = datetime(2026, 11, 27, 12, 0, tzinfo=UTC).timestamp()
    for i in range(count):
        item = f"item-{i:08d}"
        prediction = Prediction(
            prediction_id=f"p-{item}",
            item_id=item,
            project="bench",
            model=ModelRef(name="clf", version="1"),
            task_type=TaskType.CLASSIFICATION,
            label=ClassificationLabel(label="cat", scores={"cat": 0.5, "dog": 0.3, "fox": 0.2}),
            label_schema=LabelSchemaRef(id="animals", version=1),
            produced_at=datetime.fromtimestamp(base - i, UTC),
        )
        yield ReviewRequest(
            request_id=f"req-{item}",
            item_id=item,
            project="bench",
            prediction=prediction,
            reasons=[ReviewReason(code=ReasonCode.LOW_CONFIDENCE, detail="0.5 < 0.8")],
            priority=i % 101,
            required_tier=Tier.REVIEWER,
            required_overlap=1,
            allowed_classes=CLASSES,
            policy_version=1,
            created_at=datetime.fromtimestamp(base - (i % 3600), UTC),
        )


def _produce(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer(producer_config(bootstrap, extra={"linger.ms": 20}))
    for request in make_requests(count):
        value = request.to_json_bytes()
        while True:
            try:
                producer.produce(topic, key=request.item_id.encode(), value=value)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(120):
        raise click.ClickException("review requests were not acknowledged")


@contextlib.contextmanager
def _gateway_process(
    env: dict[str, str], port: int, log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    command = [
        sys.executable,
        "-c",
        "from loupe.runtime.cli import main; main()",
        "--log-level",
        "WARNING",
        "gateway",
        "--port",
        str(port),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


async def _wait_ready(client: httpx.AsyncClient, headers: dict[str, str], tasks: int) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            health = await client.get("/healthz")
            if health.status_code == 200 and not health.json()["rebuilding"]:
                me = await client.get("/v1/me", headers=headers)
                if me.status_code == 200 and me.json()["queues"].get("reviewer", 0) >= tasks:
                    return
        await asyncio.sleep(0.25)
    raise click.ClickException("gateway did not become ready with all tasks queued")


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3) if values else 0.0


def _auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def _baseline(base_url: str, tokens: list[str], total: int) -> dict[str, Any]:
    latencies: list[float] = []
    per_worker = max(1, total // len(tokens))

    async def worker(connection: Connection, token: str) -> None:
        head = connection.head("GET", "/v1/me", _auth(token), 0)
        for _ in range(per_worker):
            started = time.perf_counter()
            status, _ = await connection.send(head)
            latencies.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise click.ClickException(f"GET /v1/me answered {status}")

    connections = [await Connection.open(base_url) for _ in tokens]
    started = time.time()
    try:
        await asyncio.gather(*(worker(c, t) for c, t in zip(connections, tokens, strict=True)))
    finally:
        for connection in connections:
            await connection.close()
    return {"latencies": latencies, "started": started, "ended": time.time()}


@dataclass(frozen=True)
class Load:
    """What one load-generating process does in the cycle phases."""

    cycles: int
    """Cycles this process runs at most (it also stops when the queue is empty)."""
    budget_s: float
    rate: float | None = None
    """Cycles per second this process starts (paced, open loop); None: as fast as it can."""


async def _cycles(base_url: str, tokens: list[str], load: Load) -> dict[str, Any]:
    claims: list[float] = []
    decisions: list[float] = []
    completed = 0
    errors: dict[str, int] = {}
    deadline = time.monotonic() + load.budget_s
    run = uuid.uuid4().hex[:8]  # idempotency keys never repeat across phases
    slots = itertools.count()
    first_slot_at = 0.0  # set once every connection is open

    def error(what: str) -> None:
        errors[what] = errors.get(what, 0) + 1

    async def next_slot() -> float | None:
        """When the next cycle should start (perf_counter), or None when this phase is over."""
        slot = next(slots)
        if slot >= load.cycles or time.monotonic() >= deadline:
            return None
        if load.rate is None:
            return time.perf_counter()
        # open loop: cycles are due on a fixed schedule, whoever is free takes the next one;
        # latency counts from the due time, so waiting for a free reviewer is not hidden
        due = first_slot_at + slot / load.rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        return due

    async def worker(index: int, connection: Connection, token: str) -> None:
        nonlocal completed
        claim_head = connection.head("POST", "/v1/tasks/claim", _auth(token), 0)
        json_headers = {**_auth(token), "content-type": "application/json"}
        count = 0
        while (due := await next_slot()) is not None:
            status, answer = await connection.send(claim_head)
            claims.append((time.perf_counter() - due) * 1000)
            if status == 204:
                return
            if status != 200:
                error(f"claim {status}")
                continue
            task_id = json.loads(answer)["task"]["task_id"]
            count += 1
            body = json.dumps(
                {
                    "action": "approve",
                    "label": {"kind": "classification", "label": "cat"},
                    "seconds_spent": 1.0,
                    "idempotency_key": f"{run}-w{index}-{count}",
                }
            ).encode()
            head = connection.head("POST", f"/v1/tasks/{task_id}/decision", json_headers, len(body))
            started = time.perf_counter()
            status, _ = await connection.send(head, body)
            decisions.append((time.perf_counter() - started) * 1000)
            if status == 200:
                completed += 1
            else:
                error(f"decision {status}")

    connections = [await Connection.open(base_url) for _ in tokens]
    started = time.time()
    first_slot_at = time.perf_counter()
    try:
        await asyncio.gather(
            *(worker(i, c, t) for i, (c, t) in enumerate(zip(connections, tokens, strict=True)))
        )
    finally:
        for connection in connections:
            await connection.close()
    return {
        "claims": claims,
        "decisions": decisions,
        "completed": completed,
        "errors": errors,
        "started": started,
        "ended": time.time(),
    }


def _baseline_client(base_url: str, tokens: list[str], requests: int) -> dict[str, Any]:
    """One load-generating process of the baseline phase (GET /v1/me)."""
    return uvloop.run(_baseline(base_url, tokens, requests))


def _cycles_client(base_url: str, tokens: list[str], load: Load) -> dict[str, Any]:
    """One load-generating process of a cycle phase."""
    # the client's own collector pauses would count as gateway latency in the paced phase
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    return uvloop.run(_cycles(base_url, tokens, load))


def _fan_out(
    client: Callable[[str, list[str], Any], dict[str, Any]],
    base_url: str,
    tokens: list[str],
    procs: int,
    share: Callable[[int], Any],
) -> list[dict[str, Any]]:
    """Run ``client`` in ``procs`` processes, each with its slice of the reviewers."""
    slices = [tokens[i::procs] for i in range(procs) if tokens[i::procs]]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(len(slices), mp_context=context) as pool:
        futures = [pool.submit(client, base_url, part, share(len(slices))) for part in slices]
        return [future.result() for future in futures]


def _phase(parts: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    claims = [v for p in parts for v in p["claims"]]
    decisions = [v for p in parts for v in p["decisions"]]
    completed = sum(p["completed"] for p in parts)
    elapsed = max(p["ended"] for p in parts) - min(p["started"] for p in parts)
    return {
        f"{prefix}cycles": completed,
        f"{prefix}seconds": round(elapsed, 3),
        f"{prefix}cycles_per_s": round(completed / elapsed, 1) if elapsed else 0.0,
        f"{prefix}claim_p50_ms": _pct(claims, 50),
        f"{prefix}claim_p99_ms": _pct(claims, 99),
        f"{prefix}decision_p50_ms": _pct(decisions, 50),
        f"{prefix}decision_p99_ms": _pct(decisions, 99),
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _drive(
    base_url: str, gateway_pid: int, tokens: list[str], *, tasks: int, budget_s: float, procs: int
) -> dict[str, Any]:
    """Baseline; a warm-up; half the rest of the tasks at full speed, the other half paced."""

    async def ready() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            await _wait_ready(client, _auth(tokens[0]), tasks)

    asyncio.run(ready())
    base = _fan_out(_baseline_client, base_url, tokens, procs, lambda n: min(tasks, 5_000) // n)
    base_latencies = [v for part in base for v in part["latencies"]]
    base_s = max(p["ended"] for p in base) - min(p["started"] for p in base)
    baseline_rps = len(base_latencies) / base_s if base_s else 0.0
    warm_up = min(2_000, tasks // 10)  # JIT-compiles the broker's and the gateway's hot paths
    warm = _fan_out(
        _cycles_client, base_url, tokens, procs, lambda n: Load(warm_up // n, budget_s / 4)
    )
    measured = (tasks - warm_up) // 2
    cpu_before = _cpu_seconds(gateway_pid)
    flat_out = _fan_out(
        _cycles_client, base_url, tokens, procs, lambda n: Load(measured // n, budget_s / 4)
    )
    gateway_cpu_s = _cpu_seconds(gateway_pid) - cpu_before
    paced = _fan_out(
        _cycles_client,
        base_url,
        tokens,
        procs,
        lambda n: Load(measured // n, budget_s / 4, TARGET_CYCLES_PER_S / n),
    )
    errors: dict[str, int] = {}
    for part in warm + flat_out + paced:
        for key, count in part["errors"].items():
            errors[key] = errors.get(key, 0) + count
    result = _phase(flat_out, "")
    cycles_per_s = result["cycles_per_s"]
    return {
        **result,
        "gateway_cpu_ms_per_cycle": (
            round(gateway_cpu_s * 1000 / result["cycles"], 3) if result["cycles"] else None
        ),
        **_phase(paced, "paced_"),
        "paced_offered_cycles_per_s": TARGET_CYCLES_PER_S,
        "errors": errors,
        "client_processes": procs,
        "baseline_me_requests_per_s": round(baseline_rps, 1),
        "baseline_me_p99_ms": _pct(base_latencies, 99),
        "ratio_cycle_vs_two_baseline_requests": (
            round(cycles_per_s / (baseline_rps / 2), 3) if baseline_rps else None
        ),
    }


@click.command("gateway")
@click.option("--reviewers", type=click.IntRange(1, 1_000), default=50, show_default=True)
@click.option("--tasks", type=click.IntRange(1, 1_000_000), default=20_000, show_default=True)
@click.option("--budget-s", type=float, default=600.0, show_default=True, help="Time bound.")
@click.option(
    "--private/--configured",
    default=True,
    show_default=True,
    help="Private local stack on free ports, or the configured Kafka/Redis.",
)
@click.option(
    "--client-procs",
    type=click.IntRange(1, 16),
    default=2,
    show_default=True,
    help="Load-generator processes (the reviewers are split between them).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def command(
    *, reviewers: int, tasks: int, budget_s: float, private: bool, client_procs: int, as_json: bool
) -> None:
    """Claim + decision cycles/s and p99 latencies of one gateway process."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    with bench_infra(private=private) as infra, tempfile.TemporaryDirectory() as tmp:
        ensure_topics(infra.kafka_bootstrap, prefix=prefix)
        users = UsersFile(Path(tmp) / "users.json")
        tokens = []
        for i in range(reviewers):
            users.add(User(id=f"bench-r{i:04d}", role=Role.REVIEWER))
            tokens.append(users.issue_token(f"bench-r{i:04d}", PEPPER)[0])
        produce_started = time.perf_counter()
        _produce(infra.kafka_bootstrap, f"{prefix}{REVIEW_REQUESTS.name}", tasks)
        produce_s = time.perf_counter() - produce_started
        env = {
            **os.environ,
            "LOUPE_KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
            "LOUPE_REDIS_URL": infra.redis_url,
            "LOUPE_TOPIC_PREFIX": prefix,
            "LOUPE_GATEWAY_REDIS_PREFIX": f"{prefix}gw:",
            "LOUPE_GATEWAY_USERS_FILE": str(users.path),
            "LOUPE_GATEWAY_TOKEN_PEPPER": PEPPER,
            "LOUPE_GATEWAY_AUTH_CACHE_S": "30",
        }
        port = free_port()
        with _gateway_process(env, port, Path(tmp) / "gateway.log") as process:
            base_url = f"http://127.0.0.1:{port}"
            result = _drive(
                base_url, process.pid, tokens, tasks=tasks, budget_s=budget_s, procs=client_procs
            )
    result.update(
        {
            "benchmark": "gateway",
            "reviewers": reviewers,
            "tasks": tasks,
            "produce_s": round(produce_s, 2),
            "private_stack": private,
            "target_cycles_per_s": TARGET_CYCLES_PER_S,
            "target_p99_ms": TARGET_P99_MS,
            # capacity at full speed; latency while serving the target rate
            "target_met": result["cycles_per_s"] >= TARGET_CYCLES_PER_S
            and result["paced_cycles_per_s"] >= 0.95 * TARGET_CYCLES_PER_S
            and max(result["paced_claim_p99_ms"], result["paced_decision_p99_ms"]) < TARGET_P99_MS,
        }
    )
    if as_json:
        click.echo(json.dumps(result))
    else:
        for key, value in result.items():
            click.echo(f"{key}: {value}")
