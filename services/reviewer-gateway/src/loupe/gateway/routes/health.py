"""Unauthenticated operations endpoints: health and Prometheus metrics."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from loupe.gateway.context import GatewayDep
from loupe.gateway.errors import error_body
from loupe.gateway.responses import FastJSONResponse

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz(gw: GatewayDep) -> FastJSONResponse:
    """Redis and Kafka reachability, the consumer thread (dead or stuck is unhealthy, with
    why), and whether a rebuild is running (a failed rebuild is unhealthy: the gateway cannot
    serve until a later attempt succeeds)."""
    try:
        redis_ok = bool(await gw.redis.ping())
        state = await gw.readiness()
    except aioredis.RedisError:
        redis_ok, state = False, None
    kafka_ok = await asyncio.to_thread(gw.producer.ping, 2.0)
    failed = state is not None and state.error is not None
    consumer_problem = gw.consumer_problem()
    healthy = redis_ok and kafka_ok and not failed and consumer_problem is None
    body: dict[str, object] = {
        "status": "ok" if healthy else "unhealthy",
        "redis": redis_ok,
        "kafka": kafka_ok,
        "consumer": consumer_problem or "ok",
        "rebuilding": state is not None and not state.ready,
    }
    if failed and state is not None:
        body["rebuild_error"] = state.error
    return FastJSONResponse(body, status_code=200 if healthy else 503)


@router.get("/readyz")
async def readyz(gw: GatewayDep) -> FastJSONResponse:
    """200 once the working set is complete; 503 with the reason (and the rebuild's progress)
    while it is rebuilt, after a failed rebuild, or while Redis is unreachable."""
    try:
        state = await gw.readiness()
    except aioredis.RedisError as exc:
        return FastJSONResponse(
            error_body("redis_unavailable", f"Redis is unreachable: {exc}"), 503
        )
    if state.ready:
        return FastJSONResponse({"status": "ready"})
    error = state.as_error()
    return FastJSONResponse(
        error_body(error.code, error.message, state.progress), 503, headers=error.headers
    )


@router.get("/metrics")
async def prometheus_metrics() -> Response:
    """Prometheus text exposition."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
