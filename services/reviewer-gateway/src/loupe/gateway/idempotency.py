"""Replays of idempotent calls (a reviewer's decision, a lead's final call): one rule for both.

A key names one call: its retry (same key, same target, same body) answers the first call's
result with ``replayed: true``; the same key for another target or with another body is
``409 idempotency_conflict``, never another call's answer taken for this one's.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from pydantic import BaseModel

from loupe.gateway.errors import ApiError
from loupe.gateway.responses import FastJSONResponse

_HASH = "request_hash"
"""Where a stored result keeps its request's hash (never shown to the client)."""


def request_hash(body: BaseModel, *, measures: frozenset[str] = frozenset()) -> str:
    """SHA-256 of the request as parsed (defaults filled in, so an omitted field and its default
    are the same request), without its idempotency key (body or header) and without
    ``measures``: fields that describe the call rather than decide it (a retry may measure the
    time spent again)."""
    fields = body.model_dump(mode="json", exclude={"idempotency_key", *measures})
    return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()


def stored_result(result: dict[str, Any], body_hash: str) -> dict[str, Any]:
    """What to keep for replays of a call: its result and its request's hash."""
    return {**result, _HASH: body_hash}


def first_answer(stored: bytes) -> FastJSONResponse:
    """The answer of the call that stored ``stored`` (``replayed: false``)."""
    result = orjson.loads(stored)
    result.pop(_HASH, None)
    return FastJSONResponse({**result, "replayed": False})


def replayed(stored: bytes, *, body_hash: str, field: str, value: str) -> FastJSONResponse:
    """The stored first answer for a retry of its call; ``409 idempotency_conflict`` when the key
    was used for another ``field`` (task, item) or with another body (a result stored before
    results kept their hash is replayed)."""
    result = orjson.loads(stored)
    if result.get(field) != value:
        what = field.removesuffix("_id")
        raise ApiError(
            409, "idempotency_conflict", f"this idempotency key was used for another {what}"
        )
    if result.pop(_HASH, body_hash) != body_hash:
        raise ApiError(
            409, "idempotency_conflict", "this idempotency key was used with another request body"
        )
    return FastJSONResponse({**result, "replayed": True})
