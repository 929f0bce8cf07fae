"""Unauthenticated operations endpoints: health and Prometheus metrics."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from loupe.gateway.context import GatewayDep
from loupe.gateway.responses import FastJSONResponse

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz(gw: GatewayDep) -> FastJSONResponse:
    """Redis and Kafka reachability, and whether a rebuild is running."""
    try:
        redis_ok = bool(await gw.redis.ping())
        rebuilding = not await gw.redis.exists(f"{gw.settings.redis_prefix}ready")
    except aioredis.RedisError:
        redis_ok, rebuilding = False, False
    kafka_ok = await asyncio.to_thread(gw.producer.ping, 2.0)
    healthy = redis_ok and kafka_ok
    return FastJSONResponse(
        {
            "status": "ok" if healthy else "unhealthy",
            "redis": redis_ok,
            "kafka": kafka_ok,
            "rebuilding": rebuilding,
        },
        status_code=200 if healthy else 503,
    )


@router.get("/metrics")
async def prometheus_metrics() -> Response:
    """Prometheus text exposition."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
