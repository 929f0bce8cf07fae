"""The hostile stream: what a hostile or merely buggy producer can put on ``predictions``, each
kind with the outcome the router owes it (issue 11's acceptance corpus).

Every record is one of ``KINDS``. A kind either must end in ``predictions.dlq`` with a given
``ErrorKind`` (``expect``), or is *hostile but valid* (``expect is None``) and must be routed
like any prediction — to ``labels.resolved`` and/or ``review.requests``, keyed by its item id —
because the contract accepts it and a person can still label it. Why, per kind, is in its
``why``. The choices worth knowing:

- The Kafka key is not part of the contract the router checks: it only picks the input
  partition, and every output is keyed by the prediction's ``item_id``, so downstream
  co-partitioning holds whatever the producer keyed by. A null key, a key that is not the item
  id, even a key of hundreds of KB in front of a valid prediction, is routed. A huge key in
  front of an invalid value is dead-lettered for the value, with a 1 KiB head of the key.
- An embedding that is poison whatever the reference holds (a value beyond 1e9, all values
  equal) is always ``novel``; one of another dimension or a norm 100 times off is novel
  *relative to* its reference, so it is not when it is the first its (partition, model
  version, class) sees, or when such embeddings outnumber what the reference folded (then it
  starts again from it: docs/router.md, novelty).
- Anything that would grow the router's memory (random model versions or MIME types, thousands
  of class names of stale label schemas, embeddings of another dimension) is valid: it is
  reviewed (``novel``, ``state_limit``, ``schema_changed``) and never takes the state beyond
  the policy's ``state_limits``.
- A JSON object with a key twice is decoded as the contract's parser does (the last one wins);
  the router routes it by that value and splices the raw bytes into its outputs.
- A missing ``schema_version`` is version 1 (the contract's default); any other version, a
  string included, is ``unsupported_version``.
- A wrong type in ``task_type`` or in the label's ``kind`` (the task type's tag) is
  ``unknown_task_type``, in ``schema_version`` ``unsupported_version``; anywhere else
  ``wrong_type``.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from harness import samples
from harness.router_flows import DIM, prediction
from loupe.schemas import ErrorKind, Prediction

DEMO_CLASSES = [str(d) for d in range(10)]
SCENE_POLICY = """\
version: 1
project: scene
label_schema: {id: road, version: 2, classes: ["car", "person", "bike"]}
task_types: [bbox, track]
confidence: {default: 0.5}
novelty: {warmup: 20}
review: {spot_check_rate: 0.0}
state_limits: {max_classes: 3, max_model_versions: 8, max_data_types: 4, max_references: 12}
"""
"""Boxes and tracks, with small caps on the router's memory so that the hostile stream hits
them in every partition."""
SCENE_LIMITS = {"max_model_versions": 8, "max_data_types": 4, "max_references": 12}
DEMO_LIMITS = {"max_model_versions": 100, "max_data_types": 64, "max_references": 256}
"""The conftest policy's project ``demo`` keeps the default caps."""

_AT = "2026-11-27T00:00:00+00:00"


@dataclass(frozen=True)
class Kind:
    """One kind of record, what the router must do with it and why."""

    name: str
    expect: ErrorKind | None
    why: str
    count: int
    build: Callable[[int, np.random.Generator], tuple[bytes | None, bytes | None, str]]
    """(key, value, item id the outputs carry) of the kind's ``i``-th record."""
    expect_each: Callable[[int], ErrorKind] | None = None
    """The ``i``-th record's expected error kind when it is not the same for all."""


@dataclass(frozen=True)
class HostileRecord:
    """One record of the corpus."""

    kind: str
    key: bytes | None
    value: bytes | None
    item: str
    expect: ErrorKind | None

    @property
    def signature(self) -> tuple[str, str | None]:
        """SHA-256 of value and key, as a dead letter reports them."""
        return (
            hashlib.sha256(self.value or b"").hexdigest(),
            None if self.key is None else hashlib.sha256(self.key).hexdigest(),
        )


class Valid:
    """Valid ``demo`` predictions, clustered per digit (as in ``router_flows.mixed_inputs``)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.centroids = self.rng.normal(0, 3, size=(10, DIM))

    def embedding(self, digit: int) -> np.ndarray:
        vector: np.ndarray = self.centroids[digit] + self.rng.normal(0, 1, DIM)
        return vector

    def doc(self, item: str, *, top: float = 0.95, version: str = "1") -> dict[str, Any]:
        digit = int(self.rng.integers(0, 10))
        made = prediction(item, str(digit), top, self.embedding(digit), version=version)
        document: dict[str, Any] = orjson.loads(made.to_json_bytes())
        return document


def _dumps(document: Any) -> bytes:
    return orjson.dumps(document)


def _scene_boxes(item: str, boxes: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "prediction_id": f"p-{item}",
        "item_id": item,
        "project": "scene",
        "model": {"name": "det", "version": "1"},
        "task_type": "bbox",
        "label": {"kind": "bbox", "image": {"width": 640, "height": 480}, "boxes": boxes},
        "label_schema": {"id": "road", "version": 2},
        "produced_at": _AT,
        **extra,
    }


def _box(label: str = "car", **coords: float) -> dict[str, Any]:
    return {"label": label, "score": 0.9, "x": 10.0, "y": 20.0, "w": 50.0, "h": 40.0, **coords}


def _scene_track(item: str, frames: list[dict[str, Any]]) -> dict[str, Any]:
    document = _scene_boxes(item, [])
    document["task_type"] = "track"
    document["model"] = {"name": "trk", "version": "1"}
    document["label"] = {
        "kind": "track",
        "image": {"width": 1920, "height": 1080},
        "frames": frames,
    }
    return document


def _frame(number: int, *track_ids: str) -> dict[str, Any]:
    return {"frame": number, "boxes": [{**_box(), "track_id": t} for t in track_ids]}


# --- wrong types, one per field of the Prediction contract ---------------------------------


def contract_documents() -> list[dict[str, Any]]:
    """Valid Prediction documents that between them use every field of the contract."""
    return [
        orjson.loads(event.to_json_bytes())
        for event in (samples.classification(), samples.boxes(), samples.tracks())
    ]


def field_paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every field path of a document (the first element stands for a list's items)."""
    if prefix:
        yield prefix
    if isinstance(node, dict):
        for name, value in node.items():
            yield from field_paths(value, (*prefix, name))
    elif isinstance(node, list) and node:
        yield from field_paths(node[0], (*prefix, 0))


def wrong_value(value: Any) -> Any:
    """A JSON value of another type than ``value`` (strict contracts coerce nothing)."""
    if isinstance(value, bool):
        return "true"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return 12
    if isinstance(value, list):
        return {"0": value[0] if value else 1}
    if isinstance(value, dict):
        return [value]
    return True


def wrong_type_kind(path: tuple[Any, ...]) -> ErrorKind:
    """The error kind a wrong type at ``path`` is reported with (see the module docstring)."""
    if path == ("schema_version",):
        return ErrorKind.UNSUPPORTED_VERSION
    if path in (("task_type",), ("label", "kind")):
        return ErrorKind.UNKNOWN_TASK_TYPE
    return ErrorKind.WRONG_TYPE


def wrong_type_variants() -> list[tuple[str, bytes, ErrorKind]]:
    """(field path, document with a wrong type there, expected kind): every field of the
    Prediction contract, walked in documents of the three task types, with the model's own
    field list as a check that none is left out."""
    variants: dict[str, tuple[bytes, ErrorKind]] = {}
    for document in contract_documents():
        for path in field_paths(document):
            mutated = copy.deepcopy(document)
            node = mutated
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = wrong_value(node[path[-1]])
            name = ".".join(str(part) for part in path)
            if document["task_type"] != "classification" and name in variants:
                name = f"{document['task_type']}:{name}"
            variants.setdefault(name, (_dumps(mutated), wrong_type_kind(path)))
    covered = {name.split(":")[-1].split(".")[0] for name in variants}
    assert covered == set(Prediction.model_fields), set(Prediction.model_fields) ^ covered
    return [(name, raw, kind) for name, (raw, kind) in sorted(variants.items())]


# --- the kinds --------------------------------------------------------------------------------


def kinds(valid: Valid, *, broker_limit: int) -> list[Kind]:
    """Every kind of the corpus; ``broker_limit`` is the predictions topic's
    ``max.message.bytes`` (near-limit values are built just under it)."""
    wrong_types = wrong_type_variants()
    # a record batch of one record: 61 bytes of batch header, ~30 of record framing
    near_limit = broker_limit - 512

    def item(kind: str, i: int) -> str:
        return f"h-{kind}-{i:05d}"

    def valid_raw(kind: str, i: int, **changes: Any) -> tuple[str, bytes]:
        name = item(kind, i)
        document = valid.doc(name)
        document.update(changes)
        return name, _dumps(document)

    def keyed(kind: str, transform: Callable[[dict[str, Any], int], Any]) -> Any:
        def build(i: int, rng: np.random.Generator) -> tuple[bytes | None, bytes | None, str]:
            name = item(kind, i)
            document = valid.doc(name)
            result = transform(document, i)
            raw = result if isinstance(result, bytes) else _dumps(document)
            return name.encode(), raw, name

        return build

    def padded(document: dict[str, Any], size: int, rng: np.random.Generator) -> bytes:
        head = _dumps(document)[:-1] + b',"padding":"'
        filler = rng.integers(97, 123, size=max(0, size - len(head) - 2), dtype=np.uint8)
        return head + filler.tobytes() + b'"}'

    def truncated(i: int, rng: np.random.Generator) -> tuple[bytes | None, bytes | None, str]:
        name, raw = valid_raw("truncated_json", i)
        return name.encode(), raw[: int(rng.integers(1, len(raw) - 1))], name

    def garbage(i: int, rng: np.random.Generator) -> tuple[bytes | None, bytes | None, str]:
        name = item("binary_garbage", i)
        body = rng.integers(0, 256, size=int(rng.integers(1, 4_000)), dtype=np.uint8).tobytes()
        return name.encode(), b"\xff\xfe" + name.encode() + body, name

    def non_utf8(document: dict[str, Any], i: int) -> bytes:
        raw = _dumps(document)
        bad = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"][i % 5]
        field = [b'"item_id":"', b'"prediction_id":"', b'"version":"', b'"label":"'][i % 4]
        return raw.replace(field, field + bad, 1)

    def nesting(document: dict[str, Any], i: int) -> bytes:
        depth = 1_000 + i % 7
        nested = b"[" * depth + b"1.0" + b"]" * depth
        if i % 2:
            return _dumps(document)[:-1] + b',"data":{"text":' + nested + b"}}"
        return _dumps(document).replace(b'"embedding":[', b'"embedding":[' + nested + b",", 1)

    def non_finite(document: dict[str, Any], i: int) -> bytes:
        token = [b"NaN", b"Infinity", b"-Infinity", b"1e309", b"-1e999"][i % 5]
        raw = _dumps(document)
        if i % 2:
            return raw.replace(b'"embedding":[', b'"embedding":[' + token + b",", 1)
        return raw.replace(b'"scores":{"0":', b'"scores":{"0":' + token + b',"x":', 1)

    def huge_number(document: dict[str, Any], i: int) -> bytes:
        token = [b"1e308", b"-1e308", b"1.7976931348623157e308", b"1e300"][i % 4]
        return _dumps(document).replace(b'"scores":{"0":', b'"scores":{"0":' + token + b',"x":', 1)

    def wrong_type(i: int, rng: np.random.Generator) -> tuple[bytes | None, bytes | None, str]:
        _, raw, _ = wrong_types[i % len(wrong_types)]
        name = item("wrong_type", i)
        return name.encode(), raw + b" " * (i // len(wrong_types)), name

    def top_level(i: int, rng: np.random.Generator) -> tuple[bytes | None, bytes | None, str]:
        name = item("not_an_object", i)
        values = [b"[]", b"12", b'"prediction"', b"null", b"true", b"[{}]", b"-0.0"]
        return name.encode(), values[i % len(values)] + b" " * (i // len(values)), name

    def version(values: list[Any]) -> Callable[[dict[str, Any], int], Any]:
        def set_version(document: dict[str, Any], i: int) -> bytes:
            raw = _dumps(document)
            token = values[i % len(values)]
            return raw.replace(b'"schema_version":1', b'"schema_version":' + token, 1)

        return set_version

    def stale_schema(i: int, rng: np.random.Generator) -> tuple[bytes | None, bytes | None, str]:
        name = item("stale_schema_classes", i)
        unseen = [f"legacy-{i}-{n}-{'ü' * (n % 5)}" for n in range(1_000)]
        if i % 2:
            boxes = [_box(cls, x=float(n % 580), y=float(n % 430)) for n, cls in enumerate(unseen)]
            document = _scene_boxes(name, boxes, label_schema={"id": "road", "version": 1})
        else:
            document = valid.doc(name)
            scores = {cls: 0.0005 for cls in unseen[:999]}
            scores[unseen[999]] = 0.5
            document["label"] = {"kind": "classification", "label": unseen[999], "scores": scores}
            document["label_schema"] = {"id": "digits", "version": 2 + i}
        return name.encode(), _dumps(document), name

    def random_version(i: int, rng: np.random.Generator) -> tuple[bytes | None, bytes | None, str]:
        name = item("random_model_version", i)
        tag = "".join(chr(int(c)) for c in rng.integers(0x21, 0x7E, size=int(rng.integers(1, 256))))
        if i % 2:
            document = _scene_boxes(name, [_box()], model={"name": "det", "version": tag})
            document["embedding"] = [float(x) for x in rng.normal(0, 1, DIM)]
        else:
            document = valid.doc(name, version=tag)
        return name.encode(), _dumps(document), name

    def random_mime(i: int, rng: np.random.Generator) -> tuple[bytes | None, bytes | None, str]:
        name = item("random_data_type", i)
        mime = f"image/x-{rng.integers(0, 2**62):x}" + "z" * int(rng.integers(0, 100))
        document = _scene_boxes(name, [_box()], data={"uri": f"s3://b/{name}", "mime_type": mime})
        return name.encode(), _dumps(document), name

    def markup(document: dict[str, Any], i: int) -> None:
        marks = [
            "<script>alert(1)</script>",
            "\u202egnp.exe",
            "<img src=x onerror=alert(1)>",
            "'; DROP TABLE items; --",
            "\u200b\u2066\u2069\ufeff",
            "{{7*7}}${7*7}",
            "🙂" * 20,
        ]
        mark = marks[i % len(marks)]
        document["item_id"] = f"{mark}|{document['item_id']}"
        document["prediction_id"] = f"{mark}|{document['prediction_id']}"
        document["model"]["version"] = f"1{mark}" if i % 3 == 0 else "1"
        document["data"] = {"text": mark * 50, "uri": f"javascript:{mark}", "mime_type": mark}

    def markup_build(i: int, rng: np.random.Generator) -> tuple[bytes | None, bytes | None, str]:
        name = item("markup_strings", i)
        document = valid.doc(name)
        markup(document, i)
        return document["item_id"].encode(), _dumps(document), document["item_id"]

    def extreme_embedding(document: dict[str, Any], i: int) -> bytes:
        vector = np.asarray(document["embedding"])
        choice = i % 6
        if choice == 0:
            vector = np.full(DIM, 1e308)
        elif choice == 1:
            vector = np.full(DIM, -1e200)
        elif choice == 2:
            vector[i % DIM] = 1e38
        elif choice == 3:
            vector = np.zeros(DIM)
        elif choice == 4:
            vector = np.full(DIM, 0.25)
        else:
            vector[(i + 1) % DIM] = -1e10
        document["embedding"] = [float(x) for x in vector]
        return _dumps(document)

    def tiny_embedding(document: dict[str, Any], i: int) -> bytes:
        document["embedding"] = [float(x) * 1e-12 for x in document["embedding"]]
        return _dumps(document)

    def wrong_dimension(document: dict[str, Any], i: int) -> bytes:
        dims = [1, 3, DIM - 1, DIM + 1, 512, 4_096]
        rng = np.random.default_rng(i)
        document["embedding"] = [float(x) for x in rng.normal(0, 3, dims[i % len(dims)])]
        return _dumps(document)

    def duplicated_id(document: dict[str, Any], i: int) -> None:
        document["prediction_id"] = f"p-shared-{i % 3}"

    def frame_limit(i: int, rng: np.random.Generator) -> tuple[bytes | None, bytes | None, str]:
        name = item("tracks_at_frame_limit", i)
        frames = [_frame(n, "t1") if n % 500 == 0 else _frame(n) for n in range(10_000)]
        return name.encode(), _dumps(_scene_track(name, frames)), name

    def over_frame_limit(
        i: int, rng: np.random.Generator
    ) -> tuple[bytes | None, bytes | None, str]:
        name = item("tracks_over_frame_limit", i)
        return name.encode(), _dumps(_scene_track(name, [_frame(n) for n in range(10_001)])), name

    def frames_disordered(
        i: int, rng: np.random.Generator
    ) -> tuple[bytes | None, bytes | None, str]:
        name = item("track_frames_disordered", i)
        frames = [_frame(2, "a"), _frame(1, "a")] if i % 2 else [_frame(0, "a", "a")]
        return name.encode(), _dumps(_scene_track(name, frames)), name

    def boxes_at_limit(i: int, rng: np.random.Generator) -> tuple[bytes | None, bytes | None, str]:
        name = item("boxes_at_limit", i)
        boxes = [
            _box("person", x=float(n % 580), y=float(n % 430), w=5.0, h=5.0) for n in range(1_000)
        ]
        return name.encode(), _dumps(_scene_boxes(name, boxes)), name

    def box_build(kind: str, box: dict[str, Any]) -> Any:
        def build(i: int, rng: np.random.Generator) -> tuple[bytes | None, bytes | None, str]:
            name = item(kind, i)
            return name.encode(), _dumps(_scene_boxes(name, [_box(), box])), name

        return build

    def near_limit_value(
        i: int, rng: np.random.Generator
    ) -> tuple[bytes | None, bytes | None, str]:
        name = item("near_limit_value", i)
        return name.encode(), padded(valid.doc(name), near_limit - len(name), rng), name

    def oversized_value(i: int, rng: np.random.Generator) -> tuple[bytes | None, bytes | None, str]:
        name = item("oversized_value", i)
        return name.encode(), padded(valid.doc(name), 458_753 + i * 7_919, rng), name

    def huge_key(value_kind: str) -> Any:
        def build(i: int, rng: np.random.Generator) -> tuple[bytes | None, bytes | None, str]:
            name = item(f"huge_key_{value_kind}", i)
            size = 200_000 + i * 37_003
            key = (name.encode() + b"#") * (size // (len(name) + 1))
            if value_kind == "valid":
                return key, _dumps(valid.doc(name)), name
            if value_kind == "junk":
                return key, b"{" + name.encode() + b"\x00\xff", name
            return key, padded(valid.doc(name), near_limit - len(key), rng), name

        return build

    def tombstone(i: int, rng: np.random.Generator) -> tuple[bytes | None, bytes | None, str]:
        name = item("tombstone", i)
        return name.encode(), None, name

    def null_both(i: int, rng: np.random.Generator) -> tuple[bytes | None, bytes | None, str]:
        return None, None, item("null_key_tombstone", i)

    def empty_value(i: int, rng: np.random.Generator) -> tuple[bytes | None, bytes | None, str]:
        name = item("empty_value", i)
        return name.encode(), b"", name

    def null_key(i: int, rng: np.random.Generator) -> tuple[bytes | None, bytes | None, str]:
        name, raw = valid_raw("null_key", i)
        return None, raw, name

    def other_key(i: int, rng: np.random.Generator) -> tuple[bytes | None, bytes | None, str]:
        name, raw = valid_raw("key_not_item_id", i)
        key = [f"other-{i}", "", "item-000001", "\x00\x01"][i % 4]
        return key.encode(), raw, name

    def drop(field: str) -> Callable[[dict[str, Any], int], None]:
        def remove(document: dict[str, Any], i: int) -> None:
            del document[field]

        return remove

    def missing_field(document: dict[str, Any], i: int) -> None:
        required = ["prediction_id", "item_id", "project", "model", "task_type", "label"]
        del document[[*required, "label_schema", "produced_at"][i % 8]]

    def set_field(**values: Any) -> Callable[[dict[str, Any], int], None]:
        def change(document: dict[str, Any], i: int) -> None:
            for name, value in values.items():
                options = value if isinstance(value, list) else [value]
                document[name] = options[i % len(options)]

        return change

    def duplicate_keys(document: dict[str, Any], i: int) -> bytes:
        raw = _dumps(document)
        return raw[:-1] + b',"prediction_id":"p-last-' + str(i).encode() + b'"}'

    def replace(old: bytes, new: bytes) -> Callable[[dict[str, Any], int], bytes]:
        return lambda document, i: _dumps(document).replace(old, new, 1)

    def label_change(**values: Any) -> Callable[[dict[str, Any], int], None]:
        def change(document: dict[str, Any], i: int) -> None:
            document["label"].update(values)

        return change

    e = ErrorKind
    return [
        # --- dead-lettered ------------------------------------------------------------------
        Kind("truncated_json", e.MALFORMED_JSON, "not JSON", 80, truncated),
        Kind("binary_garbage", e.MALFORMED_JSON, "random bytes, not UTF-8", 80, garbage),
        Kind(
            "non_utf8_in_string",
            e.MALFORMED_JSON,
            "JSON must be UTF-8",
            80,
            keyed("non_utf8_in_string", non_utf8),
        ),
        Kind(
            "utf8_bom",
            e.MALFORMED_JSON,
            "a BOM is not JSON",
            30,
            keyed("utf8_bom", lambda d, i: b"\xef\xbb\xbf" + _dumps(d)),
        ),
        Kind(
            "utf16_json",
            e.MALFORMED_JSON,
            "JSON must be UTF-8",
            20,
            keyed("utf16_json", lambda d, i: _dumps(d).decode().encode("utf-16")),
        ),
        Kind(
            "trailing_data",
            e.MALFORMED_JSON,
            "one record, one document",
            40,
            keyed("trailing_data", lambda d, i: _dumps(d) * 2),
        ),
        Kind(
            "lone_surrogate",
            e.MALFORMED_JSON,
            "an escaped lone surrogate is no character",
            30,
            keyed("lone_surrogate", replace(b'"item_id":"', b'"item_id":"\\ud800')),
        ),
        Kind(
            "deep_nesting",
            e.MALFORMED_JSON,
            "1,000 levels exceed the parser's recursion limit",
            60,
            keyed("deep_nesting", nesting),
        ),
        Kind("tombstone", e.MALFORMED_JSON, "a null value is no prediction", 60, tombstone),
        Kind(
            "null_key_tombstone", e.MALFORMED_JSON, "a null value is no prediction", 40, null_both
        ),
        Kind("empty_value", e.MALFORMED_JSON, "an empty value is no prediction", 20, empty_value),
        Kind(
            "non_finite_tokens",
            e.NON_FINITE,
            "NaN and infinities are refused",
            140,
            keyed("non_finite_tokens", non_finite),
        ),
        Kind(
            "huge_numbers",
            e.OUT_OF_RANGE,
            "a score of 1e308 is outside [0, 1]",
            60,
            keyed("huge_numbers", huge_number),
        ),
        Kind(
            "wrong_type",
            e.WRONG_TYPE,
            "strict contracts coerce nothing (kind per field)",
            3 * len(wrong_types),
            wrong_type,
            lambda i: wrong_types[i % len(wrong_types)][2],
        ),
        Kind("not_an_object", e.WRONG_TYPE, "a prediction is a JSON object", 40, top_level),
        Kind(
            "future_schema_version",
            e.UNSUPPORTED_VERSION,
            "consumers refuse versions they do not know",
            60,
            keyed("future_schema_version", version([b"2", b"3", b"99", b"18446744073709551616"])),
        ),
        Kind(
            "unknown_schema_version",
            e.UNSUPPORTED_VERSION,
            "consumers refuse versions they do not know",
            40,
            keyed("unknown_schema_version", version([b"0", b"-1", b'"1"', b"1.5", b"null"])),
        ),
        Kind(
            "unknown_project",
            e.UNKNOWN_PROJECT,
            "no policy, nobody to review it",
            60,
            keyed("unknown_project", set_field(project=["nope", "demo2", "x" * 64])),
        ),
        Kind(
            "unknown_task_type",
            e.UNKNOWN_TASK_TYPE,
            "not one of the three task types",
            60,
            keyed("unknown_task_type", set_field(task_type=["audio", "segmentation", "BBOX"])),
        ),
        Kind(
            "class_outside_schema",
            e.INVALID_LABEL,
            "claims the current schema but uses another class",
            60,
            keyed("class_outside_schema", label_change(label="X", scores={"X": 0.99})),
        ),
        Kind(
            "label_task_mismatch",
            e.SCHEMA_VIOLATION,
            "a classification label under task bbox",
            30,
            keyed("label_task_mismatch", set_field(task_type="bbox")),
        ),
        Kind(
            "inverted_box",
            e.OUT_OF_RANGE,
            "negative width or height",
            60,
            box_build("inverted_box", _box(w=-40.0, h=-30.0)),
        ),
        Kind(
            "box_outside_image",
            e.INVALID_LABEL,
            "boxes must lie inside the image",
            40,
            box_build("box_outside_image", _box(x=630.0)),
        ),
        Kind(
            "track_frames_disordered",
            e.INVALID_LABEL,
            "frames strictly increasing, track ids unique per frame",
            40,
            frames_disordered,
        ),
        Kind(
            "tracks_over_frame_limit",
            e.TOO_LARGE,
            "more than 10,000 track frames",
            4,
            over_frame_limit,
        ),
        Kind(
            "embedding_over_limit",
            e.TOO_LARGE,
            "more than 4,096 embedding values",
            10,
            keyed("embedding_over_limit", set_field(embedding=[[0.5] * 4_097])),
        ),
        Kind(
            "id_too_long",
            e.TOO_LARGE,
            "ids are at most 256 characters",
            40,
            keyed("id_too_long", set_field(prediction_id="p" * 257)),
        ),
        Kind(
            "control_chars_in_id",
            e.SCHEMA_VIOLATION,
            "ids are printable",
            40,
            keyed("control_chars_in_id", set_field(item_id=["a\x00b", "a\nb", "\x1b[31m", "\x7f"])),
        ),
        Kind(
            "unknown_field",
            e.SCHEMA_VIOLATION,
            "unknown fields are refused",
            40,
            keyed("unknown_field", set_field(admin=True)),
        ),
        Kind(
            "missing_field",
            e.SCHEMA_VIOLATION,
            "required fields",
            40,
            keyed("missing_field", missing_field),
        ),
        Kind(
            "naive_timestamp",
            e.SCHEMA_VIOLATION,
            "timestamps need an offset",
            40,
            keyed(
                "naive_timestamp",
                set_field(produced_at=["2026-11-27T00:00:00", "0001-01-01T00:00:00+01:00"]),
            ),
        ),
        Kind(
            "near_limit_value",
            e.TOO_LARGE,
            "just under the broker's limit, over the router's payload limit",
            6,
            near_limit_value,
        ),
        Kind(
            "oversized_value",
            e.TOO_LARGE,
            "over the router's 448 KiB payload limit",
            10,
            oversized_value,
        ),
        Kind(
            "huge_key_junk",
            e.MALFORMED_JSON,
            "the value is junk; the key is kept as a 1 KiB head",
            8,
            huge_key("junk"),
        ),
        Kind(
            "huge_key_near_limit",
            e.TOO_LARGE,
            "key and value together just under the broker's limit",
            4,
            huge_key("near_limit"),
        ),
        # --- hostile but valid: routed --------------------------------------------------------
        Kind(
            "huge_key_valid",
            None,
            "the key is not checked; outputs are keyed by item id",
            8,
            huge_key("valid"),
        ),
        Kind("null_key", None, "the key only picks the input partition", 60, null_key),
        Kind("key_not_item_id", None, "the key only picks the input partition", 60, other_key),
        Kind(
            "random_model_version",
            None,
            "valid; novel, then state_limit beyond the cap",
            160,
            random_version,
        ),
        Kind(
            "random_data_type",
            None,
            "valid; novel, then state_limit beyond the cap",
            60,
            random_mime,
        ),
        Kind(
            "stale_schema_classes",
            None,
            "valid; schema_changed, its 1,000 unseen classes never stored",
            24,
            stale_schema,
        ),
        Kind(
            "duplicated_prediction_id",
            None,
            "producers reuse ids; each item gets its own request",
            60,
            keyed("duplicated_prediction_id", duplicated_id),
        ),
        Kind("markup_strings", None, "ids and text are opaque to the router", 70, markup_build),
        Kind(
            "extreme_embedding",
            None,
            "finite; novel and kept out of the reference",
            60,
            keyed("extreme_embedding", extreme_embedding),
        ),
        Kind(
            "wrong_dimension_embedding",
            None,
            "valid; novel, unless it reaches a reference that folded no more than it refused",
            60,
            keyed("wrong_dimension_embedding", wrong_dimension),
        ),
        Kind(
            "tiny_embedding",
            None,
            "valid; novel by its norm, unless it reaches a reference that folded no more than "
            "it refused",
            30,
            keyed("tiny_embedding", tiny_embedding),
        ),
        Kind("tracks_at_frame_limit", None, "10,000 frames is within the contract", 4, frame_limit),
        Kind("boxes_at_limit", None, "1,000 boxes is within the contract", 6, boxes_at_limit),
        Kind(
            "missing_schema_version",
            None,
            "the contract's default version is 1",
            30,
            keyed("missing_schema_version", drop("schema_version")),
        ),
        Kind(
            "duplicate_json_keys",
            None,
            "decoded as the contract's parser does: the last one wins",
            30,
            keyed("duplicate_json_keys", duplicate_keys),
        ),
        Kind(
            "no_scores",
            None,
            "valid; reviewed as low_confidence",
            30,
            keyed("no_scores", label_change(scores={})),
        ),
        Kind(
            "max_length_ids",
            None,
            "256 printable characters is within the contract",
            30,
            keyed("max_length_ids", set_field(prediction_id="p" * 256)),
        ),
    ]


def corpus(*, broker_limit: int, seed: int = 11, valid_count: int = 1_000) -> list[HostileRecord]:
    """The hostile records and ``valid_count`` valid ``demo`` predictions, shuffled together
    (deterministically). Valid ones are kinds ``valid_confident`` (90 %) and ``valid_low``."""
    valid = Valid(seed)
    rng = np.random.default_rng(seed)
    records: list[HostileRecord] = []
    for kind in kinds(valid, broker_limit=broker_limit):
        for i in range(kind.count):
            key, value, item = kind.build(i, rng)
            expect = kind.expect if kind.expect_each is None else kind.expect_each(i)
            records.append(HostileRecord(kind.name, key, value, item, expect))
    for i in range(valid_count):
        name = f"v-{i:05d}"
        low = rng.random() < 0.1
        document = valid.doc(name, top=0.6 if low else 0.95)
        valid_kind = "valid_low" if low else "valid_confident"
        records.append(HostileRecord(valid_kind, name.encode(), _dumps(document), name, None))
    order = rng.permutation(len(records))
    return [records[int(i)] for i in order]


def expected_wrong_type_kinds() -> dict[str, ErrorKind]:
    """Field path -> kind of every wrong-type variant (the ``wrong_type`` records cycle them)."""
    return {name: kind for name, _, kind in wrong_type_variants()}
