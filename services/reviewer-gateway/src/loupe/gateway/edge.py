"""The gateway's one outer ASGI layer: body-size limit, security headers, latency histogram.

One layer instead of three: each ASGI wrapper costs every request a closure and an extra await.
"""

from __future__ import annotations

import logging
import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loupe.gateway import metrics
from loupe.gateway.errors import error_body
from loupe.gateway.responses import FastJSONResponse
from loupe.gateway.security import SecurityHeaders

log = logging.getLogger(__name__)


class EdgeMiddleware:
    """413 for oversized bodies, the security headers on every answer (500s too), latency.

    ``security`` holds the current headers (the CSP follows the projects' media origins): read
    from memory on every answer, refreshed by the app in the background.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, security: SecurityHeaders) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.security = security

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        limit = self.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self._send_with_headers(send, self._too_large())
                self._observe(scope, started)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # an HTTPException passes FastAPI's body parsing unchanged (anything else
                    # becomes a 400) and is answered by the app's handler with the error shape
                    raise HTTPException(413, f"request body exceeds {limit} bytes")
            return message

        response_started = False

        async def secured_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                headers = message.get("headers", [])
                present = {name.lower() for name, _ in headers}
                message["headers"] = [
                    *headers,
                    *((n, v) for n, v in self.security.headers if n not in present),
                ]
            await send(message)

        try:
            await self.app(scope, limited_receive, secured_send)
        except Exception:
            if response_started:
                raise
            # answered here rather than by Starlette's outermost handler, so that a 500 carries
            # the error shape and the security headers too (and never a stack trace)
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            body = error_body("internal_error", "internal server error")
            await self._send_with_headers(send, FastJSONResponse(body, 500))
        finally:
            self._observe(scope, started)

    async def _send_with_headers(self, send: Send, response: FastJSONResponse) -> None:
        headers = [*response.raw_headers, *self.security.headers]
        start = {"type": "http.response.start", "status": response.status_code, "headers": headers}
        await send(start)
        await send({"type": "http.response.body", "body": response.body})

    def _too_large(self) -> FastJSONResponse:
        message = f"request body exceeds {self.max_body_bytes} bytes"
        return FastJSONResponse(error_body("body_too_large", message), 413)

    @staticmethod
    def _observe(scope: Scope, started: float) -> None:
        path = getattr(scope.get("route"), "path", "other")
        metrics.LATENCY.labels(path, scope["method"]).observe(time.perf_counter() - started)
