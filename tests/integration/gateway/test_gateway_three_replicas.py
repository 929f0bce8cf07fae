"""Three gateway replicas, one Redis, one Kafka, a real resolver and 100 reviewers (issue 12,
point 3).

Three ``loupe gateway`` processes (own ports; the same Redis prefix, topics and users file) and
a ``python -m loupe.resolver`` process serve 100 simulated reviewers over HTTP, each request to a
random replica. Review requests (overlap 2, some needing a skill, two projects) go straight to
``review.requests``; the resolver turns each item's two votes into a label on
``labels.resolved`` and the gateways close its task. Along the way reviewers claim from two tabs
at once, send one decision twice at once to two replicas (with the same idempotency key, and
with a fresh one), retry a decided task with a fresh key, skip, close tabs that give the task
back, and close tabs without a word (dead clients, on a short lease).

It holds that every item is resolved by exactly two people, no person is ever given a task
twice (but again after their own lease on it ended undecided) nor fills two slots of one item, a
dead client's lease is gone within lease + 5 s, and at the end Redis holds no queued task, lease
or open task.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import ssl
import subprocess
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from confluent_kafka import Consumer, TopicPartition

from harness.infra import Infra
from harness.kafka import produce, read_all
from integration.resolver.resolver_process import ResolverProcess
from loupe.demo.processes import loupe_command
from loupe.gateway.logic import Role
from loupe.gateway.store import TaskStore
from loupe.gateway.users import User, UsersFile
from loupe.runtime.connections import process_env, redis_kwargs
from loupe.runtime.kafka import consumer_config
from loupe.schemas import (
    Action,
    AuditEvent,
    ConsolidationMethod,
    ConsolidationPolicy,
    ResolvedLabel,
    ReviewDecision,
    ReviewRequest,
    decode,
)
from loupe.schemas.topics import AUDIT, LABELS_RESOLVED, REVIEW_DECISIONS, REVIEW_REQUESTS
from loupe.stack import free_port

from .conftest import PEPPER, request_for

REPLICAS = 3
REVIEWERS = 100
ITEMS = 300
OVERLAP = 2
LEASE_S = 10.0
RETURN_BOUND_S = LEASE_S + 5.0
"""A dead client's lease is gone (its slot back in the queue) within this of the claim."""
DEADLINE_S = 420.0
"""The whole run (start to every item resolved) fails the test past this, never hangs: a guard,
not a speed (about 220 s were seen on 2 cores at load 17, three other test sessions beside)."""
PROJECTS = ("alpha", "beta")
SKILLS = ("de", "medical")
CLASSES = ("cat", "dog", "fox")
SEED = 12
LOOPBACK_TLS = ssl.create_default_context()
"""Never used (plain HTTP on loopback), but httpx builds a client's TLS context when it is made:
one shared context, not 300 loads of the CA bundle (0.4 s of CPU each)."""

# what a reviewer does with a claimed task (cumulative shares)
DEAD_TAB = 0.06
SAME_KEY_TWICE = 0.16
FRESH_KEY_TWICE = 0.26
RETRY_FRESH_KEY = 0.32
SKIP = 0.35
RELEASE = 0.38
TWO_TABS = 0.12
"""Share of claims made from two tabs of one person at once (each to another replica)."""
MAX_DEAD_PER_PERSON = 2
QUEUE_WAIT_S = 120.0
"""Hang guard: once started, the replicas have queued every request by then."""


def _people() -> list[User]:
    """100 reviewers: a third with skill ``de``, a fifth ``medical``, a quarter on one project
    only (every pair of skill and project has many eligible people)."""
    people = []
    for i in range(REVIEWERS):
        skills = [s for s, every in zip(SKILLS, (3, 5), strict=True) if i % every == 0]
        projects = [PROJECTS[i % 2]] if i % 4 == 1 else ["*"]
        people.append(User(id=f"r{i:03d}", role=Role.REVIEWER, skills=skills, projects=projects))
    return people


def _requests() -> list[ReviewRequest]:
    """Requests with overlap 2, a fifth needing ``de`` and some ``medical``, on two projects;
    consolidated by majority so that two agreeing votes settle an item whatever the resolver
    knows of the reviewers (nobody here could take an escalation)."""
    majority = ConsolidationPolicy(method=ConsolidationMethod.MAJORITY)
    requests = []
    for i in range(ITEMS):
        skills = ["de"] if i % 5 == 0 else ["medical"] if i % 7 == 0 else []
        request = request_for(
            f"item-{i:04d}",
            overlap=OVERLAP,
            skills=skills,
            project=PROJECTS[i % 2],
            priority=i % 100,
            age_s=i % 600,
        )
        requests.append(request.model_copy(update={"consolidation": majority}))
    return requests


@dataclass
class Gateways:
    """Three ``loupe gateway`` processes on one Redis prefix, topics and users file."""

    urls: list[str]
    processes: list[subprocess.Popen[bytes]]
    logs: list[Path]

    def tails(self, chars: int = 3000) -> str:
        return "\n".join(
            f"--- gateway {i} ---\n{log.read_text(errors='replace')[-chars:]}"
            for i, log in enumerate(self.logs)
        )

    def check_alive(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                raise AssertionError(f"a gateway exited:\n{self.tails()}")


@contextlib.contextmanager
def _gateways(infra: Infra, env: dict[str, str], tmp_path: Path) -> Iterator[Gateways]:
    ports = [free_port() for _ in range(REPLICAS)]
    logs = [tmp_path / f"gateway-{i}.log" for i in range(REPLICAS)]
    processes = []
    try:
        for port, log_path in zip(ports, logs, strict=True):
            with log_path.open("wb") as log:
                processes.append(
                    subprocess.Popen(
                        [*loupe_command(), "gateway", "--port", str(port)],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        gateways = Gateways([f"http://127.0.0.1:{p}" for p in ports], processes, logs)
        deadline = time.monotonic() + 90
        probe = httpx.Client(timeout=2, verify=LOOPBACK_TLS)
        for url in gateways.urls:
            while True:
                gateways.check_alive()
                with contextlib.suppress(httpx.HTTPError):
                    health = probe.get(f"{url}/healthz")
                    if health.status_code == 200 and not health.json()["rebuilding"]:
                        break
                if time.monotonic() > deadline:
                    raise AssertionError(f"{url} not ready in 90 s:\n{gateways.tails()}")
                time.sleep(0.2)
        probe.close()
        yield gateways
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)


class ResolvedWatch:
    """Reads ``labels.resolved`` from the start in a thread: the person-made label per item."""

    def __init__(self, infra: Infra, topic: str, items: set[str]) -> None:
        self.items = items
        self.labels: dict[str, ResolvedLabel] = {}
        self.all_resolved = threading.Event()
        self._stop = threading.Event()
        self._consumer = Consumer(consumer_config(infra.kafka, f"test-{uuid.uuid4().hex}"))
        partitions = self._consumer.list_topics(topic, timeout=30).topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(500, timeout=0.2):
                if message.error() is not None:
                    continue
                label = decode(ResolvedLabel, message.value())
                if label.person_made:
                    self.labels[label.item_id] = label
            if self.items <= self.labels.keys():
                self.all_resolved.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close()


@dataclass
class Claim:
    """One successful claim as the reviewer saw it."""

    task_id: str
    item_id: str
    person: str
    lease_id: str
    expires_ms: int
    fate: str = "pending"
    """decided | dead | skipped | released | lost (the lease ran out before the decision)."""


@dataclass
class Run:
    """Everything the reviewers saw, for the checks after the run."""

    claims: list[Claim] = field(default_factory=list)
    two_tab_attempts: int = 0
    violations: list[str] = field(default_factory=list)
    figures: Counter[str] = field(default_factory=Counter)
    dead_checks: list[asyncio.Task[None]] = field(default_factory=list)


def _decision(claim: Claim, key: str, action: Action = Action.CORRECT) -> dict[str, Any]:
    if action is Action.SKIP:
        return {"action": "skip", "idempotency_key": key}
    label = CLASSES[int(claim.item_id.rsplit("-", 1)[1]) % len(CLASSES)]
    return {
        "action": action.value,
        "label": {"kind": "classification", "label": label},
        "idempotency_key": key,
    }


class Reviewer:
    """One simulated person: claims and decides over HTTP, each request to a random replica."""

    def __init__(
        self,
        person: str,
        token: str,
        clients: list[httpx.AsyncClient],
        store: TaskStore,
        run: Run,
        watch: ResolvedWatch,
        deadline: float,
    ) -> None:
        self.person = person
        self.headers = {"Authorization": f"Bearer {token}"}
        self.clients = clients
        self.store = store
        self.run = run
        self.watch = watch
        self.deadline = deadline
        self.rng = random.Random(f"{SEED}-{person}")
        self.dead = 0
        self.keys = 0

    def _two_replicas(self) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
        first, second = self.rng.sample(self.clients, 2)
        return first, second

    def _key(self) -> str:
        self.keys += 1
        return f"{self.person}-{self.keys}"

    async def work(self) -> None:
        idle = 0
        while not self.watch.all_resolved.is_set() and time.monotonic() < self.deadline:
            if self.rng.random() < TWO_TABS:
                self.run.two_tab_attempts += 1
                tab_a, tab_b = self._two_replicas()
                got = await asyncio.gather(self._claim(tab_a), self._claim(tab_b))
                claims = [c for c in got if c is not None]
                if len(claims) == 2 and claims[0].task_id == claims[1].task_id:
                    # one answer was so slow that the other tab's lease had run out and the task
                    # came back to the same person: one lease, which the later claim holds
                    self.run.figures["two tabs given one task, one lease after the other"] += 1
                    earlier = min(claims, key=lambda c: c.expires_ms)
                    earlier.fate = "lost"
                    claims.remove(earlier)
                elif len(claims) == 2:
                    self.run.figures["two tabs both leased a task"] += 1
                await asyncio.gather(*(self._handle(c) for c in claims))
            else:
                claims = [c for c in [await self._claim(self.rng.choice(self.clients))] if c]
                for claim in claims:
                    await self._handle(claim)
            idle = 0 if claims else idle + 1
            if idle:  # nothing to claim: poll less and less often, up to every 2 s
                await asyncio.sleep(min(2.0, 0.25 * idle) * (0.5 + self.rng.random()))

    async def _claim(self, client: httpx.AsyncClient) -> Claim | None:
        self.run.figures["claim requests"] += 1
        try:
            response = await client.post("/v1/tasks/claim", headers=self.headers)
        except httpx.TransportError:
            # the answer is lost: a lease it granted is a dead client's, the sweeper's job
            self.run.figures["claims without an answer"] += 1
            return None
        if response.status_code == 204:
            return None
        if response.status_code == 429:  # the per-token rate limit: wait as told
            self.run.figures["claims rate limited"] += 1
            await asyncio.sleep(float(response.headers["retry-after"]))
            return None
        if response.status_code == 409 and response.json()["error"]["code"] == "lease_limit":
            self.run.figures["claims over the lease cap"] += 1  # dead tabs' leases count
            return None
        assert response.status_code == 200, response.text
        body = response.json()
        claim = Claim(
            task_id=body["task"]["task_id"],
            item_id=body["task"]["item_id"],
            person=self.person,
            lease_id=body["lease"]["lease_id"],
            expires_ms=_epoch_ms(body["lease"]["expires_at"]),
        )
        self.run.claims.append(claim)
        return claim

    async def _decide(
        self, client: httpx.AsyncClient, claim: Claim, key: str, action: Action = Action.CORRECT
    ) -> httpx.Response:
        """One decision; a lost answer is sent again with the same key (to another replica,
        as a load balancer would), as a client does."""
        for attempt in range(3):
            if attempt:
                client = self.rng.choice(self.clients)
            try:
                return await client.post(
                    f"/v1/tasks/{claim.task_id}/decision",
                    headers=self.headers,
                    json=_decision(claim, key, action),
                )
            except httpx.TransportError:
                self.run.figures["decisions sent again after a lost answer"] += 1
        raise AssertionError(f"no answer to {self.person}'s decision on {claim.task_id}")

    async def _handle(self, claim: Claim) -> None:
        roll = self.rng.random()
        figures = self.run.figures
        if roll < DEAD_TAB and self.dead < MAX_DEAD_PER_PERSON:
            # the tab closes: no decision, no release, no heartbeat
            self.dead += 1
            claim.fate = "dead"
            figures["dead clients"] += 1
            self.run.dead_checks.append(asyncio.create_task(self._check_returned(claim)))
            return
        if roll < SAME_KEY_TWICE:
            figures["double submits, same key"] += 1
            key = self._key()
            one, two = self._two_replicas()
            answers = await asyncio.gather(
                self._decide(one, claim, key), self._decide(two, claim, key)
            )
            self._expect_one_vote(claim, answers, same_key=True)
        elif roll < FRESH_KEY_TWICE:
            figures["double submits, fresh key"] += 1
            one, two = self._two_replicas()
            answers = await asyncio.gather(
                self._decide(one, claim, self._key()), self._decide(two, claim, self._key())
            )
            self._expect_one_vote(claim, answers, same_key=False)
        elif roll < RETRY_FRESH_KEY:
            figures["retries with a fresh key"] += 1
            first = await self._decide(self.rng.choice(self.clients), claim, self._key())
            if self._accepted(claim, first):
                again = await self._decide(self.rng.choice(self.clients), claim, self._key())
                if again.status_code != 409 or again.json()["error"]["code"] != "not_lease_holder":
                    self.run.violations.append(
                        f"{self.person} decided {claim.task_id} again with a fresh key: "
                        f"{again.status_code} {again.text}"
                    )
        elif roll < SKIP:
            figures["skips"] += 1
            client = self.rng.choice(self.clients)
            answer = await self._decide(client, claim, self._key(), Action.SKIP)
            if self._accepted(claim, answer):
                claim.fate = "skipped"
        elif roll < RELEASE:
            # the tab closes and the UI gives the task back
            figures["releases"] += 1
            client = self.rng.choice(self.clients)
            answer = await client.post(f"/v1/tasks/{claim.task_id}/release", headers=self.headers)
            if answer.status_code == 200:
                claim.fate = "released"
            elif _lease_ran_out(claim, answer):
                claim.fate = "lost"
            else:
                self.run.violations.append(
                    f"{self.person} released {claim.task_id}: {answer.status_code} {answer.text}"
                )
        else:
            figures["single decisions"] += 1
            client = self.rng.choice(self.clients)
            self._accepted(claim, await self._decide(client, claim, self._key()))

    def _accepted(self, claim: Claim, answer: httpx.Response) -> bool:
        """Whether the decision was recorded; a lease that ran out first (a slow machine) is
        counted as lost, anything else is a violation."""
        if answer.status_code == 200:
            claim.fate = "decided"
            return True
        if _lease_ran_out(claim, answer):
            claim.fate = "lost"
            self.run.figures["leases lost before the decision"] += 1
            return False
        self.run.violations.append(
            f"{self.person} on {claim.task_id}: {answer.status_code} {answer.text}"
        )
        return False

    def _expect_one_vote(
        self, claim: Claim, answers: list[httpx.Response], *, same_key: bool
    ) -> None:
        statuses = sorted(a.status_code for a in answers)
        accepted = [a for a in answers if a.status_code == 200]
        if same_key:
            # the same decision twice: both answered with it, one of them replayed
            ids = {a.json()["decision_id"] for a in accepted}
            if statuses == [200, 200] and len(ids) == 1:
                claim.fate = "decided"
                return
        elif statuses == [200, 409]:
            refused = next(a for a in answers if a.status_code == 409)
            if refused.json()["error"]["code"] in {"decision_in_progress", "not_lease_holder"}:
                claim.fate = "decided"
                return
        if not accepted and all(_lease_ran_out(claim, a) for a in answers):
            claim.fate = "lost"
            self.run.figures["leases lost before the decision"] += 1
            return
        texts = [f"{a.status_code} {a.text}" for a in answers]
        self.run.violations.append(
            f"{self.person} sent one decision on {claim.task_id} twice "
            f"({'same' if same_key else 'fresh'} key): {texts}"
        )

    async def _check_returned(self, claim: Claim) -> None:
        """The dead tab's lease is gone within lease + 5 s of the claim (the sweeper's job)."""
        await asyncio.sleep(max(0.0, claim.expires_ms / 1000 - time.time()) + 5.0)
        leases = await self.store.my_leases(self.person)
        if any(lease.lease_id == claim.lease_id for lease in leases):
            self.run.violations.append(
                f"{self.person}'s dead lease on {claim.task_id} still held past lease + 5 s"
            )


def _lease_ran_out(claim: Claim, answer: httpx.Response) -> bool:
    return (
        answer.status_code == 409
        and answer.json()["error"]["code"] == "not_lease_holder"
        and time.time() * 1000 >= claim.expires_ms
    )


def _epoch_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def _check_claims(run: Run) -> list[str]:
    """No person got a task again after deciding or skipping it, nor while their own lease on
    it was live (two tabs claiming together included): only after it was released, or after it
    ran out (a dead tab, a decision that came too late)."""
    problems = []
    lease_ms = int(LEASE_S * 1000)
    per_pair: dict[tuple[str, str], list[Claim]] = defaultdict(list)
    for claim in run.claims:
        per_pair[(claim.task_id, claim.person)].append(claim)
    for (task_id, person), claims in per_pair.items():
        claims.sort(key=lambda c: c.expires_ms)
        for earlier, later in itertools.pairwise(claims):
            gap_ms = later.expires_ms - earlier.expires_ms
            if earlier.fate not in {"dead", "lost", "released"}:
                problems.append(f"{person} got {task_id} again after a {earlier.fate} claim")
            elif earlier.fate != "released" and gap_ms < lease_ms:
                problems.append(
                    f"{person} got {task_id} again {gap_ms} ms after a {earlier.fate} claim, "
                    "while its lease was live"
                )
    decided = Counter((c.item_id, c.person) for c in run.claims if c.fate == "decided")
    problems += [f"{p} decided {item} {n} times" for (item, p), n in decided.items() if n > 1]
    return problems


def _story(infra: Infra, topic_prefix: str, run: Run, problems: list[str]) -> str:
    """The problems, with what the reviewers saw and the audit trail of the first one's task."""
    task_id = next((c.task_id for c in run.claims if any(c.task_id in p for p in problems)), None)
    lines = [*problems[:20], f"claims and audit trail of {task_id}:"]
    lines += [str(c) for c in run.claims if c.task_id == task_id]
    for message in read_all(infra.kafka, f"{topic_prefix}{AUDIT.name}"):
        event = decode(AuditEvent, message.value())
        if event.details.get("task_id") == task_id:
            lines.append(f"{event.at.isoformat()} {event.actor.id} {event.action} {event.details}")
    return "\n".join(lines)


async def _report(run: Run, watch: ResolvedWatch, since: float) -> None:
    """Progress every 10 s on the test's output (``-s``): a slow run says where it stands."""
    while True:
        await asyncio.sleep(10)
        print(
            f"{time.monotonic() - since:.0f}s: {len(watch.labels)}/{ITEMS} resolved, "
            f"{len(run.claims)} claims, {len(run.violations)} violations, {dict(run.figures)}"
        )


async def _settled(redis_client: aioredis.Redis, prefix: str) -> dict[str, int]:
    """What Redis still holds of unfinished work (all zero when settled)."""
    queued = 0
    async for key in redis_client.scan_iter(match=f"{prefix}q:*", count=1000):
        queued += await redis_client.zcard(key)
    holders = [k async for k in redis_client.scan_iter(match=f"{prefix}holders:*", count=1000)]
    open_tasks = 0
    async for key in redis_client.scan_iter(match=f"{prefix}t:*", count=1000):
        if await redis_client.hget(key, "status") in {b"open", b"complete"}:
            open_tasks += 1
    return {
        "queued": queued,
        "leases": await redis_client.zcard(f"{prefix}leases"),
        "held tasks": len(holders),
        "open tasks": open_tasks,
    }


@pytest.mark.timeout(DEADLINE_S + 120)
async def test_three_replicas_and_a_hundred_reviewers_resolve_every_item_once_per_person(
    infra: Infra, topic_prefix: str, redis_url: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    deadline = started + DEADLINE_S
    people = _people()
    users = UsersFile(tmp_path / "users.json")
    tokens = {}
    for person in people:
        users.add(person)
        tokens[person.id] = users.issue_token(person.id, PEPPER)[0]
    requests = _requests()
    produce(
        infra.kafka, f"{topic_prefix}{REVIEW_REQUESTS.name}", [(r.item_id, r) for r in requests]
    )
    redis_prefix = f"gw{uuid.uuid4().hex[:6]}:"
    env = {
        **process_env(os.environ, infra.kafka, infra.redis),
        "LOUPE_TOPIC_PREFIX": topic_prefix,
        "LOUPE_GATEWAY_USERS_FILE": str(tmp_path / "users.json"),
        "LOUPE_GATEWAY_TOKEN_PEPPER": PEPPER,
        "LOUPE_GATEWAY_REDIS_PREFIX": redis_prefix,
        "LOUPE_GATEWAY_LEASE_SECONDS": str(LEASE_S),
        "LOUPE_GATEWAY_SWEEP_INTERVAL_S": "0.5",
    }
    resolver = ResolverProcess(
        infra.kafka, topic_prefix, tmp_path / "resolver", tmp_path / "resolver.log"
    ).start()
    redis_client = aioredis.Redis.from_url(**redis_kwargs(infra.redis))
    store = TaskStore(redis_client, redis_prefix)
    run = Run()
    items = {r.item_id for r in requests}
    watch = ResolvedWatch(infra, f"{topic_prefix}{LABELS_RESOLVED.name}", items)
    try:
        with _gateways(infra, env, tmp_path) as gateways:
            run.figures["seconds to the replicas' start"] = round(time.monotonic() - started)
            # a few connections per person and replica (two tabs, a double submit): a client
            # shared by all would scan a pool of hundreds of connections on every request
            limits = httpx.Limits(
                max_connections=4,
                max_keepalive_connections=4,
                keepalive_expiry=2.0,  # before the server's 5 s: never reuse a closing one
            )
            async with contextlib.AsyncExitStack() as stack:

                async def replicas() -> list[httpx.AsyncClient]:
                    return [
                        await stack.enter_async_context(
                            httpx.AsyncClient(
                                base_url=url, timeout=20.0, limits=limits, verify=LOOPBACK_TLS
                            )
                        )
                        for url in gateways.urls
                    ]

                clients = await replicas()
                probe = {"Authorization": f"Bearer {tokens['r000']}"}

                async def everything_queued() -> bool:
                    me = await clients[0].get("/v1/me", headers=probe)
                    return me.status_code == 200 and sum(me.json()["queues"].values()) == ITEMS

                queued_by = time.monotonic() + QUEUE_WAIT_S  # from the replicas' start
                while not await everything_queued():
                    gateways.check_alive()
                    assert time.monotonic() < queued_by, (
                        f"requests not queued {QUEUE_WAIT_S:.0f} s after the replicas started"
                    )
                    await asyncio.sleep(0.2)
                work_started = time.monotonic()
                run.figures["seconds to every request queued"] = round(work_started - started)
                reviewers = [
                    Reviewer(p.id, tokens[p.id], await replicas(), store, run, watch, deadline)
                    for p in people
                ]
                progress = asyncio.create_task(_report(run, watch, work_started))
                await asyncio.gather(*(r.work() for r in reviewers))
                progress.cancel()
                run.figures["work seconds"] = round(time.monotonic() - work_started)
                missing = sorted(items - watch.labels.keys())
                assert not missing, (
                    f"{len(missing)} items unresolved after {DEADLINE_S} s (first: {missing[:5]}); "
                    f"figures {dict(run.figures)}\n{resolver.log_tail()}\n{gateways.tails()}"
                )
                await asyncio.gather(*run.dead_checks)
                # dead tabs' leases on resolved tasks run out; then nothing is left open
                left: dict[str, int] = {}
                settle_by = time.monotonic() + RETURN_BOUND_S + 10
                while time.monotonic() < settle_by:
                    left = await _settled(redis_client, redis_prefix)
                    if not any(left.values()):
                        break
                    await asyncio.sleep(0.5)
                assert not any(left.values()), f"work left in Redis: {left}"
                for client in clients:
                    me = await client.get("/v1/me", headers=probe)
                    assert sum(me.json()["queues"].values()) == 0, me.text
                gateways.check_alive()
    finally:
        watch.close()
        resolver.stop()
        await redis_client.aclose()

    problems = run.violations + _check_claims(run)
    assert problems == [], _story(infra, topic_prefix, run, problems)
    decisions = [
        decode(ReviewDecision, m.value())
        for m in read_all(
            infra.kafka, f"{topic_prefix}{REVIEW_DECISIONS.name}", expect=ITEMS * OVERLAP
        )
    ]
    votes: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for d in decisions:
        if d.action is not Action.SKIP:
            votes[d.item_id].add((d.reviewer.id, d.decision_id))
    for item_id in items:
        people_ids = [person for person, _ in votes[item_id]]
        assert sorted(set(people_ids)) == sorted(people_ids), (item_id, votes[item_id])
        assert len(people_ids) == OVERLAP, (item_id, votes[item_id])
        label = watch.labels[item_id]
        voters = [v.reviewer.id for v in label.provenance.votes]
        assert sorted(voters) == sorted(set(people_ids)), (item_id, voters, people_ids)
    run.figures.update(
        {
            "items": ITEMS,
            "reviewers": REVIEWERS,
            "replicas": REPLICAS,
            "claims": len(run.claims),
            "two-tab claims at once": run.two_tab_attempts,
            "decision records": len(decisions),
            "seconds": round(time.monotonic() - started),
        }
    )
    print(json.dumps(dict(run.figures), sort_keys=True))
