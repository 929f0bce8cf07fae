"""The FastAPI app factory: routes, error handling, UI mount, and the background workers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import redis
import redis.asyncio as aioredis
from confluent_kafka import KafkaException
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from loupe.gateway import metrics
from loupe.gateway.audit import SERVICE_ACTOR, audit_event
from loupe.gateway.consumer import GatewayConsumer
from loupe.gateway.context import Gateway
from loupe.gateway.edge import EdgeMiddleware
from loupe.gateway.errors import install_error_handlers
from loupe.gateway.kafka_io import AsyncProducer
from loupe.gateway.openapi import install_openapi
from loupe.gateway.projector import Projector
from loupe.gateway.ratelimit import TokenRateLimit
from loupe.gateway.responses import FastJSONResponse
from loupe.gateway.routes import docs, health, items, leads, me, tasks, users
from loupe.gateway.security import SecurityHeaders
from loupe.gateway.settings import GatewaySettings
from loupe.gateway.store import TaskStore
from loupe.gateway.users import UsersFile
from loupe.runtime.connections import redis_kwargs
from loupe.runtime.kafka import RECORD_OVERHEAD_BYTES, check_access
from loupe.runtime.redis_access import check_redis_access
from loupe.schemas import AuditAction, Tier
from loupe.schemas.topics import AUDIT

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).parent


def ui_directory(settings: GatewaySettings) -> Path | None:
    """The static UI folder: configured, else ``ui/static``, else ``ui`` (if it has a page)."""
    candidates = [settings.ui_dir] if settings.ui_dir else []
    candidates += [PACKAGE_DIR / "ui" / "static", PACKAGE_DIR / "ui"]
    for folder in candidates:
        if folder is not None and (folder / "index.html").is_file():
            return folder
    return None


async def _sweep_until(gateway: Gateway, stop: asyncio.Event) -> None:
    """Return expired leases to their queues and refresh the queue-depth gauges until stopped."""
    interval = gateway.settings.sweep_interval_s
    while not stop.is_set():
        try:
            for task_id, user, item, project in await gateway.store.sweep():
                metrics.LEASES_EXPIRED.inc()
                event = audit_event(
                    SERVICE_ACTOR,
                    AuditAction.LEASE_EXPIRED,
                    item_id=item or None,
                    project=project or None,
                    details={"task_id": task_id, "user": user},
                )
                gateway.producer.send_nowait(
                    gateway.topic(AUDIT.name), item or task_id, event.to_json_bytes()
                )
            sizes = await gateway.store.queue_sizes(Tier.LEAD.rank)
            for tier, size in sizes.items():
                metrics.QUEUE_DEPTH.labels(tier).set(size)
        except aioredis.RedisError as exc:
            log.warning("lease sweep failed (will retry): %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


async def _refresh_media_origins(
    gateway: Gateway, security: SecurityHeaders, stop: asyncio.Event
) -> None:
    """Keep the CSP's media origins at the union of the projects' lists, read every
    ``media_origins_refresh_s``: one Redis command a period, none per response."""
    interval = gateway.settings.media_origins_refresh_s
    while not stop.is_set():
        try:
            security.update(await gateway.store.media_origins())
        except aioredis.RedisError as exc:
            log.warning("could not read the media origins (the CSP keeps the last ones): %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


async def _write_token_uses(gateway: Gateway, stop: asyncio.Event) -> None:
    """Every ``token_use_flush_s`` (and when stopped), write when the tokens used here since the
    last write were last used into the users file: one file write per period and replica,
    however many requests and tokens (a failed write is tried again with the next one)."""
    interval = gateway.settings.token_use_flush_s
    stopped = False
    while not stopped:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        stopped = stop.is_set()
        used, gateway.token_uses = gateway.token_uses, {}
        if not used:
            continue
        try:
            await asyncio.to_thread(gateway.users_file.record_use, used)
        except (OSError, ValueError) as exc:  # unwritable, or not JSON
            log.warning("could not record tokens' last use (will retry): %s", exc)
            for digest, at in used.items():
                gateway.token_uses.setdefault(digest, at)


def _load_users(settings: GatewaySettings) -> None:
    """Copy the users file into Redis at start, so Redis holds tokens in the current form (with
    their expiry) and the revocations recorded in the file, whatever wrote it before."""
    client = redis.Redis.from_url(**redis_kwargs(settings.redis))
    try:
        Projector(client, settings.redis_prefix).load_users(UsersFile(settings.users_file))
    except redis.RedisError as exc:
        log.warning("could not load the users file into Redis at start: %s", exc)
    finally:
        client.close()


def _tune_interpreter() -> None:
    """Process-wide settings that keep request latency flat under load (measured in the bench).

    Everything allocated by start-up lives as long as the app: ``gc.freeze()`` keeps it out of
    the collector's full passes, which otherwise walk it again and again, and young collections
    run every 20k allocations instead of 700. A 0.5 ms GIL switch interval (default 5 ms) stops
    the consumer thread from holding the event loop up for whole milliseconds at a time.
    """
    gc.freeze()
    gc.set_threshold(20_000, 20, 50)
    sys.setswitchinterval(0.0005)


def check_connections(settings: GatewaySettings) -> None:
    """Raise ``KafkaAccessError`` / ``RedisAccessError`` when Kafka or Redis refuses the
    gateway's credentials or certificates: no retry cures that, and the workers would otherwise
    retry it for ever while the gateway stays unready. Kafka or Redis merely down is left to
    their retries (the gateway starts unready or answers 503 until they are back)."""
    try:
        check_access(settings.kafka, timeout_s=10.0)
    except KafkaException as exc:
        log.warning("Kafka is not reachable at start (decisions wait for it): %s", exc)
    try:
        check_redis_access(settings.redis)
    except aioredis.RedisError as exc:
        log.warning("Redis is not reachable at start (the gateway stays unready): %s", exc)


def create_app(settings: GatewaySettings | None = None, *, own_process: bool = False) -> FastAPI:
    """Build the gateway app; the lifespan checks the credentials (``check_connections``),
    connects Redis and Kafka and starts the workers.

    ``own_process``: the app is the process's only job (``loupe gateway``), so start-up may tune
    the interpreter for it, and the command has checked the connections itself (a refusal then
    ends it with one line, not uvicorn's traceback); an app embedded in another process (tests)
    leaves the interpreter alone and checks them in its lifespan.
    """
    settings = settings or GatewaySettings()
    security = SecurityHeaders(settings.csp_max_media_origins)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for warning in settings.insecure_settings():
            log.warning("%s", warning)
        if not own_process:
            await asyncio.to_thread(check_connections, settings)
        await asyncio.to_thread(_load_users, settings)
        client = aioredis.Redis.from_url(**redis_kwargs(settings.redis), max_connections=512)
        producer = AsyncProducer(
            settings.kafka,
            extra={
                "linger.ms": settings.kafka_linger_ms,
                "message.timeout.ms": int(settings.kafka_timeout_s * 1000),
                "message.max.bytes": settings.max_record_bytes + RECORD_OVERHEAD_BYTES,
            },
        )
        gateway = Gateway(
            settings=settings,
            redis=client,
            store=TaskStore(client, settings.redis_prefix, settings.settled_retention_s),
            producer=producer,
            users_file=UsersFile(settings.users_file),
            pepper=settings.token_pepper.get_secret_value(),
            rate_limit=TokenRateLimit(client, settings.redis_prefix, settings.rate_limit),
        )
        app.state.gateway = gateway
        consumer = GatewayConsumer(settings).start() if settings.start_consumer else None
        app.state.consumer = consumer
        if consumer is not None:
            gateway.consumer_problem = consumer.problem
        stop = asyncio.Event()
        sweeper = asyncio.create_task(_sweep_until(gateway, stop))
        token_uses = asyncio.create_task(_write_token_uses(gateway, stop))
        media_origins = asyncio.create_task(_refresh_media_origins(gateway, security, stop))
        if own_process:
            _tune_interpreter()
        try:
            yield
        finally:
            stop.set()
            try:
                await asyncio.wait_for(sweeper, 10)
            except TimeoutError:
                log.warning("lease sweeper did not stop in time")
            await token_uses
            await media_origins
            if consumer is not None:
                await asyncio.to_thread(consumer.stop)
            await producer.aclose()
            await client.aclose()

    app = FastAPI(
        title="Loupe reviewer gateway",
        version="1",
        description="Leased review queues, decisions, comments, audit and diffs. "
        "See docs/gateway-api.md.",
        default_response_class=FastJSONResponse,
        lifespan=lifespan,
        docs_url=None,  # see routes/docs.py
        redoc_url=None,
        telemetry={
            "tracing": settings.otel_telemetry,
            "metrics": settings.otel_telemetry,
            "logs": settings.otel_telemetry,
        },
    )
    install_error_handlers(app)
    routers = [m.router for m in (tasks, me, items, leads, users, health, docs)]  # hot first
    for router in routers:
        app.include_router(router)
    install_openapi(app, routers)
    folder = ui_directory(settings)
    if folder is not None:
        app.mount("/", StaticFiles(directory=folder, html=True), name="ui")
    app.state.security_headers = security
    app.add_middleware(EdgeMiddleware, max_body_bytes=settings.max_body_bytes, security=security)
    return app
