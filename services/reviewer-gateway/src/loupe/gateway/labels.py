"""Parsing label payloads from API JSON with the strict contract rules."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import TypeAdapter

from loupe.schemas import BoxesLabel, ClassificationLabel, TracksLabel
from loupe.schemas.labels import Label

LABELS: TypeAdapter[ClassificationLabel | BoxesLabel | TracksLabel] = TypeAdapter(Label)


def parse_label(
    data: dict[str, Any] | None,
) -> ClassificationLabel | BoxesLabel | TracksLabel | None:
    """Validate a label dict exactly as Kafka consumers will (JSON mode, strict)."""
    if data is None:
        return None
    return LABELS.validate_json(json_bytes(data))


def json_bytes(data: Any) -> bytes:
    """Re-encode request JSON for strict validation; ``ValueError`` for unencodable values."""
    try:
        return orjson.dumps(data)
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"value cannot be represented: {exc}") from None
