"""Refusals in the log: each reason is its own line template, so the repeat limiter every
service installs thins a spray of one reason without silencing the others."""

from __future__ import annotations

import logging

from starlette.requests import Request

from loupe.gateway.errors import ApiError, _note_refusal
from loupe.runtime.logs import RepeatLimiter


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _request() -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/v1/me",
            "raw_path": b"/v1/me",
            "query_string": b"",
            "headers": [],
            "client": ("203.0.113.7", 40000),
            "server": ("gateway", 80),
            "scheme": "http",
            "root_path": "",
        }
    )


def test_a_spray_of_unknown_tokens_does_not_hide_a_revoked_token() -> None:
    kept = _Kept()
    kept.addFilter(RepeatLimiter(burst=2, window_s=3600))
    logger = logging.getLogger("loupe.gateway.errors")
    logger.addHandler(kept)
    try:
        unknown = ApiError(401, "unauthenticated", "no", reason="unknown_token")
        for _ in range(10):
            _note_refusal(_request(), unknown)
        revoked = ApiError(
            401, "unauthenticated", "no", reason="revoked_token", subject="token 0a1b of ann"
        )
        _note_refusal(_request(), revoked)
    finally:
        logger.removeHandler(kept)
    assert sum("unknown_token" in line for line in kept.lines) == 2  # thinned
    assert [line for line in kept.lines if "revoked_token" in line] == [
        "authentication failed: revoked_token (token 0a1b of ann) from 203.0.113.7 on GET /v1/me"
    ]
