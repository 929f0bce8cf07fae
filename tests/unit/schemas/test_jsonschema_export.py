"""The checked-in JSON Schema files are current, and valid events satisfy them."""

from __future__ import annotations

import json

import jsonschema
import pytest

from harness import samples
from loupe.schemas.jsonschema import DEFAULT_DIR, render_all


def test_checked_in_json_schemas_are_up_to_date() -> None:
    expected = render_all()
    on_disk = {path.name: path.read_text(encoding="utf-8") for path in DEFAULT_DIR.glob("*.json")}
    stale = sorted(name for name in expected if on_disk.get(name) != expected[name])
    extra = sorted(set(on_disk) - set(expected))
    assert not stale and not extra, (
        f"JSON Schema files out of date: {stale or ''} {extra or ''}; "
        "run `uv run python -m loupe.schemas.jsonschema` and commit the result"
    )


@pytest.mark.parametrize("event", samples.every_event(), ids=lambda e: type(e).__name__)
def test_valid_events_satisfy_their_exported_schema(event) -> None:
    schema = json.loads((DEFAULT_DIR / f"{type(event).__name__}.json").read_text())
    jsonschema.validate(json.loads(event.to_json_bytes()), schema)


def test_exported_schema_rejects_an_out_of_range_score() -> None:
    schema = json.loads((DEFAULT_DIR / "Prediction.json").read_text())
    document = json.loads(samples.classification().to_json_bytes())
    document["label"]["scores"]["cat"] = 1.5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)
