"""``loupe bench router-state``: how large the router's state grows under a hostile stream.

Routes ``--predictions`` records through the routing engine (pure, no Kafka: the state and its
changelog records are what the service produces) for one input partition, so everything lands
in one state, draining the changelog every ``--batch`` records as the service does. The stream
is built to grow state: a new model version (256-character names) and data type on most
records, stale label schemas naming thousands of unseen classes, classes of a 1,000-class
schema with long non-ASCII names, embeddings of 4,096 dimensions, extreme values (1e200, 1e38 in
one dimension, all zeros) and wrong dimensions, among ordinary confident predictions.

Reports the largest changelog record, the compacted changelog (latest record per key: what a
restore reads), the state's counts and the process's peak RSS, next to the record limit.
"""

from __future__ import annotations

import json
import resource
import time
from typing import Any

import click
import numpy as np
import orjson

from loupe.router.engine import InputRecord, OutputTopics, Route, RoutingEngine
from loupe.router.policies import PolicyBook
from loupe.router.state import STATE_RECORD_BYTES, PartitionState
from loupe.runtime.settings import ServiceSettings
from loupe.schemas import LabelSchema, NoveltyPolicy, ProjectPolicy, ReviewPolicy

CLASSES = [f"{i:04d}-" + 'ü"é\\' * 30 for i in range(1_000)]
"""1,000 classes of 125 characters that JSON-encode to about 250 bytes each."""
KINDS = (
    "confident",
    "model_version",
    "data_type",
    "stale_classes",
    "stale_boxes",
    "wide_embedding",
    "extreme",
    "wrong_dim",
)
AT = "2026-11-27T00:00:00+00:00"


def hostile_policy() -> ProjectPolicy:
    return ProjectPolicy(
        project="hostile",
        label_schema=LabelSchema(id="big", version=2, classes=CLASSES),
        novelty=NoveltyPolicy(warmup=50),
        review=ReviewPolicy(spot_check_rate=0.0, rare_class_floor=0.001),
    )


def _prediction(i: int, kind: str, rng: np.random.Generator, wide: np.ndarray) -> dict[str, Any]:
    model = {"name": "m", "version": "1"}
    data: dict[str, Any] = {"text": "x", "mime_type": "text/plain"}
    schema = 2
    embedding: list[float] | None = None  # only the embedding kinds make references
    cls = CLASSES[int(rng.integers(0, len(CLASSES)))]
    label: dict[str, Any] = {"kind": "classification", "label": cls, "scores": {cls: 0.97}}
    task = "classification"
    if kind == "model_version":
        model = {"name": "n" * 200, "version": f"{i:056d}"}
    elif kind == "data_type":
        data["mime_type"] = f"application/x-{i:0114d}"
    elif kind == "stale_classes":
        schema, name = 1, f"unseen-{i}-" + "ß" * 100
        label = {"kind": "classification", "label": name, "scores": {name: 0.99}}
    elif kind == "stale_boxes":
        schema, task = 1, "bbox"
        boxes = [
            {"label": f"u{i}-{j}-" + "x" * 100, "score": 0.9, "x": 1, "y": 1, "w": 2, "h": 2}
            for j in range(50)
        ]
        label = {"kind": "bbox", "image": {"width": 10, "height": 10}, "boxes": boxes}
    elif kind == "wide_embedding":
        model = {"name": "wide", "version": str(i % 300)}  # a 4,096-dimension reference each
        embedding = (wide + rng.normal(0, 0.1, wide.shape[0])).tolist()
    elif kind == "extreme":
        label = {"kind": "classification", "label": CLASSES[1], "scores": {CLASSES[1]: 0.97}}
        extreme: list[list[float]] = [[1e200] * 16, [0.0] * 16, [0.0] * 15 + [1e38]]
        embedding = [*extreme, rng.normal(0, 1, 16).tolist()][i % 4]
    elif kind == "wrong_dim":
        label = {"kind": "classification", "label": CLASSES[1], "scores": {CLASSES[1]: 0.97}}
        embedding = rng.normal(0, 1, int(rng.integers(1, 64))).tolist()
    return {
        "schema_version": 1,
        "prediction_id": f"p{i}",
        "item_id": f"i{i}",
        "project": "hostile",
        "model": model,
        "task_type": task,
        "label": label,
        "embedding": embedding,
        "data": data,
        "label_schema": {"id": "big", "version": schema},
        "produced_at": AT,
    }


def run(predictions: int, batch: int, seed: int = 3) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    wide = rng.normal(0, 1, 4_096)
    book = PolicyBook()
    book.offer(hostile_policy(), 1, "bench")
    settings = ServiceSettings()
    engine = RoutingEngine(
        book,
        OutputTopics("resolved", "requests", "dlq"),
        max_payload_bytes=458_752,
        max_record_bytes=settings.max_record_bytes,
    )
    state = PartitionState(0)
    latest: dict[bytes, int] = {}
    records = largest = 0
    routes: dict[str, int] = {}
    started = time.perf_counter()
    for i in range(predictions):
        kind = KINDS[(i // 2) % len(KINDS)] if i % 2 else "confident"
        raw = orjson.dumps(_prediction(i, kind, rng, wide))
        routed = engine.route(InputRecord(raw, f"i{i}".encode(), "p", 0, i), state, AT)
        routes[routed.route.value] = routes.get(routed.route.value, 0) + 1
        if (i + 1) % batch == 0 or i + 1 == predictions:
            for key, value in state.drain_changes():
                size = len(key) + len(value)
                records += 1
                largest = max(largest, size)
                latest[key] = size
    project = state.project("hostile")
    return {
        "predictions": predictions,
        "seconds": round(time.perf_counter() - started, 1),
        "routes": dict(sorted(routes.items())),
        "dlq": routes.get(Route.DLQ.value, 0),
        "changelog_records_written": records,
        "largest_state_record_bytes": largest,
        "state_record_limit_bytes": STATE_RECORD_BYTES,
        "max_record_bytes": settings.max_record_bytes,
        "compacted_state_bytes": sum(latest.values()),
        "compacted_state_keys": len(latest),
        "classes_counted": len(project.class_counts),
        "model_versions": len(project.model_versions),
        "data_types": len(project.data_types),
        "references": len(project.references),
        "embeddings_in_references": sum(r.count for r in project.references.values()),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


@click.command("router-state")
@click.option(
    "--predictions", type=click.IntRange(1, 10_000_000), default=100_000, show_default=True
)
@click.option("--batch", type=click.IntRange(1, 100_000), default=500, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON result.")
def command(predictions: int, batch: int, as_json: bool) -> None:
    """Router state size after a hostile stream (no Kafka needed)."""
    result = run(predictions, batch)
    if not as_json:
        click.echo(f"routed {predictions} hostile predictions in {result['seconds']}s")
    click.echo(json.dumps(result, indent=None if as_json else 2))
