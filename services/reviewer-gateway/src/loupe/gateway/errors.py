"""One error shape for every failure: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from loupe.gateway import metrics
from loupe.gateway.responses import FastJSONResponse

log = logging.getLogger(__name__)

_CODE_BY_STATUS = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An expected failure with a status, a stable code and a human message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
        *,
        reason: str | None = None,
        subject: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers
        self.reason = reason
        """Why a 401 or 403 was answered, for the log and the failure metric (a fixed word: a
        metric label; default: ``code``); the client sees only ``code`` and ``message``."""
        self.subject = subject
        """Whose request it was, when known (user, token id), for the log only."""


REBUILD_RETRY_AFTER_S = 1
"""``Retry-After`` of a ``503 rebuilding``: the consumer checks for a lost working set every
second, and a rebuild reloads the users before it replays Kafka."""


REDIS_RETRY_AFTER_S = 2
"""``Retry-After`` of a ``503 redis_unavailable``: Redis is down or unreachable."""


def rebuilding(message: str) -> ApiError:
    """``503 rebuilding`` (with ``Retry-After``): Redis is being rebuilt from Kafka."""
    return ApiError(503, "rebuilding", message, headers={"Retry-After": str(REBUILD_RETRY_AFTER_S)})


def item_not_found(item_id: str, settled_retention_s: float) -> ApiError:
    """The one answer for an item the caller cannot see: Redis holds nothing of it (it never
    needed review, it settled longer ago than the retention window, or it does not exist; Kafka
    is the home of all three, docs/architecture.md "Retention"), or it is another project's.
    One text for every case, so that nobody learns whether another tenant's item exists."""
    days = settled_retention_s / 86_400
    return ApiError(
        404,
        "item_not_found",
        f"no item {item_id!r} in the gateway: it never needed review or settled more than "
        f"{days:g} days ago (its final label is on labels.resolved, its history on audit)",
    )


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The JSON error document."""
    return {"error": {"code": code, "message": message, "details": details}}


def _validation_details(exc: RequestValidationError) -> list[dict[str, str]]:
    details = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error.get("loc", ()))
        details.append({"loc": location, "msg": str(error.get("msg", "invalid"))})
    return details[:50]


def _note_refusal(request: Request, exc: ApiError) -> None:
    """Log and count a failed authentication (401) or authorization (403): the client's address
    (the peer as the server sees it), the route and the reason; never a credential. Every 401 and
    403 passes here, whichever check raised it.

    The kind and reason (fixed words) are part of the line's template, since the repeat limiter
    on the log handlers counts lines per template: a spray of unknown tokens is thinned on its
    own and does not silence the line of a revoked token used from elsewhere.
    """
    kind = "authentication" if exc.status == 401 else "authorization"
    reason = exc.reason or exc.code
    metrics.AUTH_FAILURES.labels(kind, reason).inc()
    client = request.client.host if request.client else "unknown"
    who = f" ({exc.subject})" if exc.subject else ""
    log.warning(
        f"{kind} failed: {reason}%s from %s on %s %s",
        who,
        client,
        request.method,
        request.url.path,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception to the single error shape (never a stack trace)."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> FastJSONResponse:
        if exc.status in (401, 403):
            _note_refusal(request, exc)
        body = error_body(exc.code, exc.message, exc.details)
        return FastJSONResponse(body, exc.status, headers=exc.headers)

    @app.exception_handler(redis.ConnectionError)
    @app.exception_handler(redis.TimeoutError)
    async def _redis_down(_request: Request, exc: redis.RedisError) -> FastJSONResponse:
        log.warning("redis unavailable: %s", exc)
        message = "the gateway's working set (Redis) is unreachable; retry shortly"
        return FastJSONResponse(
            error_body("redis_unavailable", message),
            503,
            headers={"Retry-After": str(REDIS_RETRY_AFTER_S)},
        )

    @app.exception_handler(redis.exceptions.OutOfMemoryError)
    async def _redis_full(_request: Request, exc: redis.RedisError) -> FastJSONResponse:
        # maxmemory reached under noeviction (the README's setting): a write is refused loudly
        # rather than part of the working set evicted silently
        log.error("redis refused a write, maxmemory reached: %s", exc)
        message = "the gateway's working set (Redis) is full; retry later"
        return FastJSONResponse(
            error_body("redis_full", message),
            503,
            headers={"Retry-After": str(REDIS_RETRY_AFTER_S)},
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> FastJSONResponse:
        details = _validation_details(exc)
        first = details[0] if details else {"loc": "", "msg": "invalid request"}
        message = f"{first['loc']}: {first['msg']}" if first["loc"] else first["msg"]
        if len(details) > 1:
            message += f" (and {len(details) - 1} more problem(s))"
        return FastJSONResponse(error_body("validation_error", message, details), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> FastJSONResponse:
        code = _CODE_BY_STATUS.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return FastJSONResponse(
            error_body(code, message), exc.status_code, headers=getattr(exc, "headers", None)
        )
