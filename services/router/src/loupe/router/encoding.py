"""Fast serialisation of the router's outputs (pure).

The prediction embedded in a ``ReviewRequest`` or ``ResolvedLabel`` is spliced in as the exact
bytes it arrived with: those bytes have just been validated as a ``Prediction`` by the same
contract every consumer decodes with, so they decode to the same value, and re-serialising the
largest part of each output (embedding, scores) is avoided. Everything else is written from
typed values; the unit tests check every output decodes to the expected contract model.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import orjson

from loupe.router.decision import ReviewPlan
from loupe.router.policies import ActivePolicy
from loupe.schemas import (
    AUTO_REVISION,
    SCHEMA_VERSION,
    Prediction,
)

SERVICE = "router"


def request_id_for(item_id: str, prediction_id: str) -> str:
    """The review request id of an item's prediction: deterministic, so a replay is idempotent,
    and distinct per item, since producers do reuse prediction ids across items (the gateway
    keeps one task per request id, so a shared id would drop the second item's review)."""
    digest = hashlib.blake2b(f"{item_id}\x00{prediction_id}".encode(), digest_size=16)
    return "rq-" + digest.hexdigest()


def iso_from_ms(timestamp_ms: int) -> str:
    """An epoch-milliseconds timestamp as an ISO 8601 UTC instant."""
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat()


def iso_now() -> str:
    """The current instant as ISO 8601 UTC."""
    return datetime.now(UTC).isoformat()


def _s(text: str) -> bytes:
    return orjson.dumps(text)


_RESOLVED_HEAD = b'{"schema_version":' + str(SCHEMA_VERSION).encode() + b',"item_id":'
_REVISION_AND_OUTCOME = b',"revision":%d,"outcome":"labelled","label":' % AUTO_REVISION
_NOT_SPOT_CHECKED = b'[],"reasons":[]},"spot_checked":false'
_SPOT_CHECKED = b'],"reasons":["spot_check"]},"spot_checked":true'


class OutputEncoder:
    """Builds output records; caches the per-policy-version JSON fragments."""

    def __init__(self) -> None:
        self._policy_parts: dict[tuple[str, int, int], tuple[bytes, bytes]] = {}
        self._times: dict[str, bytes] = {}

    def _policy_fragments(self, active: ActivePolicy) -> tuple[bytes, bytes]:
        key = (active.policy.project, active.version, id(active))
        parts = self._policy_parts.get(key)
        if parts is None:
            policy = active.policy
            parts = (
                orjson.dumps(policy.label_schema.classes),
                b'"consolidation":'
                + policy.consolidation.model_dump_json().encode()
                + b',"show_votes":'
                + (b"true" if policy.review.show_votes else b"false")
                + b',"policy_version":'
                + str(active.version).encode(),
            )
            if len(self._policy_parts) > 1_000:
                self._policy_parts.clear()
            self._policy_parts[key] = parts
        return parts

    def resolved_label(
        self,
        prediction: Prediction,
        raw: bytes,
        *,
        confidence: float | None,
        spot_check_request: str | None,
        first_seen_at: str,
        resolved_at: str,
    ) -> bytes:
        """A ``ResolvedLabel``: revision 1, method ``auto``, provenance = the prediction."""
        label = prediction.label
        if spot_check_request is None:
            provenance_tail = _NOT_SPOT_CHECKED
        else:
            provenance_tail = b"".join((b"[", _s(spot_check_request), _SPOT_CHECKED))
        return b"".join(
            (
                _RESOLVED_HEAD,
                _s(prediction.item_id),
                b',"project":',
                _s(prediction.project),
                _REVISION_AND_OUTCOME,
                label.__pydantic_serializer__.to_json(label),
                b',"confidence":',
                b"null" if confidence is None else orjson.dumps(confidence),
                b',"method":"auto","provenance":{"prediction":',
                raw,
                b',"votes":[],"decided_by":[],"escalation_path":[],"request_ids":',
                provenance_tail,
                b',"first_seen_at":',
                self._time(first_seen_at),
                b',"resolved_at":',
                self._time(resolved_at),
                b"}",
            )
        )

    def _time(self, text: str) -> bytes:
        """A JSON string for a timestamp (the batch's few distinct values are cached)."""
        encoded = self._times.get(text)
        if encoded is None:
            if len(self._times) > 4_096:
                self._times.clear()
            encoded = self._times[text] = _s(text)
        return encoded

    def review_request(
        self,
        prediction: Prediction,
        raw: bytes,
        *,
        plan: ReviewPlan,
        active: ActivePolicy,
        request_id: str,
        created_at: str,
    ) -> bytes:
        """A ``ReviewRequest`` carrying the plan's reasons and requirements."""
        classes, policy_tail = self._policy_fragments(active)
        reasons = orjson.dumps([{"code": r.code.value, "detail": r.detail} for r in plan.reasons])
        return b"".join(
            (
                b'{"schema_version":',
                str(SCHEMA_VERSION).encode(),
                b',"request_id":',
                _s(request_id),
                b',"item_id":',
                _s(prediction.item_id),
                b',"project":',
                _s(prediction.project),
                b',"prediction":',
                raw,
                b',"reasons":',
                reasons,
                b',"priority":',
                str(plan.priority).encode(),
                b',"required_tier":',
                _s(plan.tier.value),
                b',"required_overlap":',
                str(plan.overlap).encode(),
                b',"skills":',
                orjson.dumps(list(plan.skills)),
                b',"allowed_classes":',
                classes,
                b',"safety_critical":',
                b"true" if plan.safety_critical else b"false",
                b',"spot_check":',
                b"true" if plan.spot_check else b"false",
                b',"escalation_level":0,"conflict":null,',
                policy_tail,
                b',"created_at":',
                self._time(created_at),
                b"}",
            )
        )
