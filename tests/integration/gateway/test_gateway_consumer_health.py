"""/healthz fails, saying why, when the consumer thread has died or is stuck (real Kafka + Redis).

The faults are injected into the gateway's own projector (a bug that raises, a call that never
returns), as a Kafka or Redis call that hangs would leave the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from harness.kafka import produce
from loupe.gateway.app import create_app
from loupe.gateway.settings import GatewaySettings
from loupe.schemas.topics import REVIEW_REQUESTS


@contextlib.asynccontextmanager
async def _running(settings: GatewaySettings) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            await wait_until(lambda: _ready(client), 200, "the working set ready")
            yield app.state.consumer, client


async def _ready(client: httpx.AsyncClient) -> int:
    return (await client.get("/readyz")).status_code


async def wait_until(
    status: Callable[[], Awaitable[int]], expected: int, what: str, timeout_s: float = 60.0
) -> None:
    deadline = time.monotonic() + timeout_s
    while await status() != expected:
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def _status(client: httpx.AsyncClient) -> int:
    return (await client.get("/healthz")).status_code


def _send_request(settings: GatewaySettings, make_request: Any, kafka_bootstrap: str) -> None:
    request = make_request("item-1")
    produce(kafka_bootstrap, settings.topic(REVIEW_REQUESTS.name), [(request.item_id, request)])


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
async def test_a_dead_consumer_thread_fails_healthz_with_the_error(
    gw_settings: GatewaySettings, make_request: Any, kafka_bootstrap: str
) -> None:
    async with _running(gw_settings) as (consumer, client):

        def bug(*_: Any, **__: Any) -> None:
            raise RuntimeError("a bug in the projector")

        consumer.projector.request = bug
        _send_request(gw_settings, make_request, kafka_bootstrap)
        await wait_until(lambda: _status(client), 503, "/healthz failing")
        body = (await client.get("/healthz")).json()
        assert "the consumer thread died" in body["consumer"]
        assert "a bug in the projector" in body["consumer"]


async def test_a_stuck_consumer_fails_healthz_and_recovers_when_it_moves(
    gw_settings: GatewaySettings, make_request: Any, kafka_bootstrap: str
) -> None:
    settings = gw_settings.model_copy(update={"stall_timeout_s": 2.0})
    async with _running(settings) as (consumer, client):
        release = threading.Event()
        store = consumer.projector.request

        def hangs(*args: Any, **kwargs: Any) -> Any:
            release.wait(120)  # as a Redis call without a reply would
            return store(*args, **kwargs)

        consumer.projector.request = hangs
        _send_request(settings, make_request, kafka_bootstrap)
        await wait_until(lambda: _status(client), 503, "/healthz failing")
        assert "has not run for" in (await client.get("/healthz")).json()["consumer"]
        release.set()
        await wait_until(lambda: _status(client), 200, "/healthz healthy again")
        assert (await client.get("/healthz")).json()["consumer"] == "ok"
