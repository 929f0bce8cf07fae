"""Fixtures for gateway integration tests: the app in-process against real Kafka and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from harness.samples import AT, CLASSES, boxes, classification, tracks
from loupe.gateway.app import create_app
from loupe.gateway.logic import Role
from loupe.gateway.settings import GatewaySettings
from loupe.gateway.users import User, UsersFile
from loupe.runtime.gateway_queues import queue_key
from loupe.schemas import Prediction, ReasonCode, ReviewReason, ReviewRequest, Tier
from loupe.stack import free_port

PEPPER = "test-pepper"


@dataclass
class GatewayHarness:
    """A running gateway app plus helpers to make users and talk to it."""

    settings: GatewaySettings
    client: httpx.AsyncClient
    users_file: UsersFile
    tokens: dict[str, str] = field(default_factory=dict)

    def add_user(
        self,
        user_id: str,
        role: Role,
        tier: Tier | None = None,
        skills: list[str] | None = None,
        projects: list[str] | None = None,
    ) -> str:
        """Create a user in the durable file, cache it in Redis, return a fresh token
        (``projects`` empty or None: every project, ``["*"]``)."""
        import redis  # noqa: PLC0415

        from loupe.gateway.projector import Projector  # noqa: PLC0415
        from loupe.runtime.connections import redis_kwargs  # noqa: PLC0415

        self.users_file.add(
            User(id=user_id, role=role, tier=tier, skills=skills or [], projects=projects or ["*"])
        )
        token, _, _ = self.users_file.issue_token(user_id, PEPPER)
        client = redis.Redis.from_url(**redis_kwargs(self.settings.redis))
        Projector(client, self.settings.redis_prefix).load_users(self.users_file)
        client.close()
        self.tokens[user_id] = token
        return token

    def auth(self, user_id: str) -> dict[str, str]:
        """The Authorization header of a user created with ``add_user``."""
        return {"Authorization": f"Bearer {self.tokens[user_id]}"}

    async def call(
        self, method: str, path: str, user: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One request as a user."""
        headers = {**(self.auth(user) if user else {}), **kwargs.pop("headers", {})}
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def wait_for(
        self, predicate: Callable[[], Any], timeout_s: float = 60.0, what: str = "condition"
    ) -> Any:
        """Poll an async predicate until it returns something truthy."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = await predicate()
            if value:
                return value
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    async def queue_size(self, user: str, tier: str) -> int:
        """Open tasks in a tier queue as the user sees them."""
        response = await self.call("GET", "/v1/me", user)
        return int(response.json()["queues"].get(tier, 0))


def gateway_settings(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path, **overrides: Any
) -> GatewaySettings:
    """Isolated settings for one test."""
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": kafka_bootstrap,
        "redis_url": redis_url,
        "topic_prefix": topic_prefix,
        "users_file": tmp_path / "users.json",
        "token_pepper": PEPPER,
        "redis_prefix": f"gw{uuid.uuid4().hex[:6]}:",
        "sweep_interval_s": 0.5,
        "auth_cache_s": 0.0,
        **overrides,
    }
    return GatewaySettings(**values)


@contextlib.asynccontextmanager
async def start_gateway(settings: GatewaySettings) -> AsyncIterator[GatewayHarness]:
    """Run the app (with lifespan) and yield a harness once the working set is ready."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            harness = GatewayHarness(settings, client, UsersFile(settings.users_file))

            async def ready() -> bool:
                response = await client.get("/healthz")
                return response.status_code == 200 and not response.json()["rebuilding"]

            await harness.wait_for(ready, what="gateway ready")
            yield harness


@contextlib.contextmanager
def serve(settings: GatewaySettings) -> Iterator[str]:
    """Run the app under uvicorn (httptools, as ``loupe gateway`` does) on a free loopback port
    and yield its base URL once the working set is ready."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", http="httptools"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{base_url}/healthz", timeout=2)
                if health.status_code == 200 and not health.json()["rebuilding"]:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or not thread.is_alive():
                raise AssertionError("the gateway did not become ready")
            time.sleep(0.2)
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def gw_settings(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> GatewaySettings:
    """Settings for this test's gateway."""
    return gateway_settings(kafka_bootstrap, redis_url, topic_prefix, tmp_path)


@pytest.fixture
async def gateway(gw_settings: GatewaySettings) -> AsyncIterator[GatewayHarness]:
    """A running gateway for this test."""
    async with start_gateway(gw_settings) as harness:
        yield harness


@pytest.fixture
def launch_gateway(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> Callable[..., contextlib.AbstractAsyncContextManager[GatewayHarness]]:
    """Start a gateway with setting overrides: ``async with launch_gateway(lease_seconds=1)``
    (``redis_url=`` points it at another Redis)."""

    def launch(**overrides: Any) -> contextlib.AbstractAsyncContextManager[GatewayHarness]:
        redis = overrides.pop("redis_url", redis_url)
        settings = gateway_settings(kafka_bootstrap, redis, topic_prefix, tmp_path, **overrides)
        return start_gateway(settings)

    return launch


def fresh_queue(prefix: str, tier: Tier = Tier.REVIEWER, project: str = "demo") -> str:
    """The key of the queue where ``request_for``'s tasks (no skills) wait until touched."""
    return queue_key(prefix, tier.rank, project, "f[]")


def request_for(
    item_id: str,
    *,
    overlap: int = 1,
    tier: Tier = Tier.REVIEWER,
    priority: int = 60,
    skills: list[str] | None = None,
    age_s: int = 0,
    kind: str = "classification",
    request_id: str | None = None,
    escalation_level: int = 0,
    show_votes: bool = False,
    project: str = "demo",
    spot_check: bool = False,
) -> ReviewRequest:
    """A review request for a fresh item."""
    prediction: Prediction = {"classification": classification, "bbox": boxes, "track": tracks}[
        kind
    ](item_id).model_copy(update={"project": project})
    return ReviewRequest(
        request_id=request_id or f"req-{item_id}",
        item_id=item_id,
        project=project,
        prediction=prediction,
        reasons=[
            ReviewReason(code=ReasonCode.SPOT_CHECK, detail="sampled")
            if spot_check
            else ReviewReason(code=ReasonCode.LOW_CONFIDENCE, detail="0.55 < 0.8")
        ],
        priority=priority,
        required_tier=tier,
        required_overlap=overlap,
        skills=skills or [],
        allowed_classes=CLASSES,
        escalation_level=escalation_level,
        show_votes=show_votes,
        spot_check=spot_check,
        policy_version=1,
        created_at=AT - timedelta(seconds=age_s),
    )


@pytest.fixture(name="make_request")
def make_request_fixture() -> Callable[..., ReviewRequest]:
    """The ``request_for`` builder."""
    return request_for
