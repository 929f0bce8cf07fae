"""Export JSON Schema for every event so producers in other languages can rely on them.

Run ``python -m loupe.schemas.jsonschema [DIR]`` after changing a contract; a test fails while the
checked-in files under ``schemas/jsonschema/`` are out of date.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from loupe.schemas.events import ALL_EVENTS
from loupe.schemas.policy import ProjectPolicy

DEFAULT_DIR = Path(__file__).resolve().parents[3] / "jsonschema"


def render_all() -> dict[str, str]:
    """File name → JSON Schema text for every event (plus the policy document)."""
    rendered = {}
    models: tuple[type[BaseModel], ...] = (*ALL_EVENTS, ProjectPolicy)
    for model in models:
        schema = model.model_json_schema(mode="validation")
        schema["$id"] = f"https://loupe.dev/schemas/v1/{model.__name__}.json"
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        rendered[f"{model.__name__}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return rendered


def export(directory: Path = DEFAULT_DIR) -> list[Path]:
    """Write every schema file into ``directory``; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR
    for path in export(target):
        print(path)
