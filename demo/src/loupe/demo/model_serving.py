"""Model serving for the demo: a real scikit-learn classifier on the bundled digits dataset.

One digit class is held out of training. The stream starts with familiar digits only (so the
router's novelty reference can warm up, as it would after a deployment) and then mixes in the
held-out class, which the model has never seen: it must show up as novel. Ground truth stays in
:class:`DemoItem` objects inside the demo process; it never goes into an event.
"""

from __future__ import annotations

import base64
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sklearn.datasets import load_digits
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.ensemble import VotingClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from loupe.schemas import (
    ClassificationLabel,
    DataRef,
    LabelSchemaRef,
    ModelRef,
    Prediction,
    TaskType,
    utcnow,
)

CLASSES: tuple[str, ...] = tuple(str(digit) for digit in range(10))
"""The label schema's classes: the ten digits (the held-out one included)."""

LABEL_SCHEMA = LabelSchemaRef(id="digits", version=1)


@dataclass(frozen=True)
class StreamConfig:
    """How the demo's prediction stream is drawn from the digits dataset."""

    items: int = 700
    held_out: str = "0"
    novel_share: float = 0.10
    """Share of stream items that belong to the held-out class (capped by what the data has)."""
    warmup_items: int = 400
    """The first items of the stream are familiar digits only (novelty reference warm-up)."""
    train_fraction: float = 0.6
    """Share of each familiar class used to train the model; the rest can be streamed."""
    seed: int = 7
    ensemble: int = 5
    """Number of small neural networks whose averaged scores the model serves."""


@dataclass(frozen=True)
class DemoItem:
    """One streamed item: what the model said and, kept private, what the truth is."""

    item_id: str
    truth: str
    predicted: str
    scores: dict[str, float]
    embedding: list[float]
    pixels: tuple[int, ...]
    """The 8x8 image, row by row, intensities 0-16."""


@dataclass(frozen=True)
class ServedModel:
    """The trained model with what the report needs to know about it."""

    name: str
    version: str
    held_out: str
    train_size: int
    train_accuracy: float


@dataclass(frozen=True)
class DemoStream:
    """The ordered stream of items plus the model that scored them."""

    model: ServedModel
    items: tuple[DemoItem, ...]

    def truth(self) -> dict[str, str]:
        """Ground truth by item id (never published)."""
        return {item.item_id: item.truth for item in self.items}

    def held_out_ids(self) -> set[str]:
        """Ids of the items whose class the model never saw."""
        return {item.item_id for item in self.items if item.truth == self.model.held_out}


def build_stream(config: StreamConfig) -> DemoStream:
    """Train the classifier without the held-out class and score the stream items in order."""
    if config.held_out not in CLASSES:
        raise ValueError(f"held_out must be one of {CLASSES}, got {config.held_out!r}")
    digits = load_digits()
    images: NDArray[np.float64] = digits.data
    targets = np.array([str(t) for t in digits.target])
    rng = np.random.default_rng(config.seed)

    train_idx: list[int] = []
    familiar_pool: list[int] = []
    for name in CLASSES:
        if name == config.held_out:
            continue
        members = rng.permutation(np.flatnonzero(targets == name))
        cut = round(len(members) * config.train_fraction)
        train_idx.extend(members[:cut].tolist())
        familiar_pool.extend(members[cut:].tolist())
    novel_pool = rng.permutation(np.flatnonzero(targets == config.held_out)).tolist()

    order = _stream_order(config, familiar_pool, novel_pool, rng)
    known = [name for name in CLASSES if name != config.held_out]
    scaler = StandardScaler().fit(images[train_idx])
    train_x = scaler.transform(images[train_idx])
    train_y = targets[train_idx]
    classifier = VotingClassifier(
        [(f"mlp{i}", _network(config.seed * 100 + i)) for i in range(config.ensemble)],
        voting="soft",
    )
    classifier.fit(train_x, train_y)
    projection = LinearDiscriminantAnalysis().fit(train_x, train_y)
    train_accuracy = float(classifier.score(train_x, train_y))

    stream_x = scaler.transform(images[order])
    embeddings = projection.transform(stream_x)
    probabilities = classifier.predict_proba(stream_x)
    columns = [str(c) for c in classifier.classes_]
    items = []
    for position, (index, embedding, proba) in enumerate(
        zip(order, embeddings, probabilities, strict=True)
    ):
        scores = {name: 0.0 for name in CLASSES}
        for name, value in zip(columns, proba, strict=True):
            scores[name] = round(float(value), 6)
        predicted = max(known, key=lambda name: scores[name])
        items.append(
            DemoItem(
                item_id=f"digit-{config.seed}-{position:05d}-{index:04d}",
                truth=str(targets[index]),
                predicted=predicted,
                scores=scores,
                embedding=[round(float(v), 5) for v in embedding],
                pixels=tuple(int(v) for v in images[index]),
            )
        )
    model = ServedModel(
        name="digits-mlp",
        version=f"mlp64-no{config.held_out}-s{config.seed}",
        held_out=config.held_out,
        train_size=len(train_idx),
        train_accuracy=train_accuracy,
    )
    return DemoStream(model=model, items=tuple(items))


def _network(seed: int) -> MLPClassifier:
    return MLPClassifier((64,), alpha=1e-3, max_iter=1_000, random_state=seed)


def _stream_order(
    config: StreamConfig,
    familiar_pool: list[int],
    novel_pool: list[int],
    rng: np.random.Generator,
) -> list[int]:
    """Familiar items first (warm-up), then familiar and held-out items shuffled together."""
    n_novel = min(round(config.items * config.novel_share), len(novel_pool))
    n_familiar = config.items - n_novel
    if n_familiar > len(familiar_pool):
        available = len(familiar_pool) + n_novel
        raise ValueError(
            f"the digits dataset leaves {available} streamable images with these settings; "
            f"asked for {config.items} items (lower --items or the train fraction)"
        )
    if config.warmup_items > n_familiar:
        raise ValueError("warmup_items cannot exceed the familiar items in the stream")
    familiar = [int(i) for i in rng.permutation(np.array(familiar_pool))[:n_familiar]]
    warmup, rest = familiar[: config.warmup_items], familiar[config.warmup_items :]
    mixed = rng.permutation(np.array(rest + novel_pool[:n_novel]))
    return warmup + [int(i) for i in mixed]


def to_prediction(item: DemoItem, model: ServedModel, project: str) -> Prediction:
    """The event model serving publishes for one item (no ground truth in it)."""
    return Prediction(
        prediction_id=f"pred-{item.item_id}",
        item_id=item.item_id,
        project=project,
        model=ModelRef(name=model.name, version=model.version),
        task_type=TaskType.CLASSIFICATION,
        label=ClassificationLabel(label=item.predicted, scores=item.scores),
        embedding=item.embedding,
        data=DataRef(uri=png_data_uri(item.pixels), mime_type="image/png"),
        label_schema=LABEL_SCHEMA,
        produced_at=utcnow(),
    )


def png_data_uri(pixels: tuple[int, ...], side: int = 8, scale: int = 4) -> str:
    """An 8x8 digit (intensities 0-16) as a ``data:image/png`` URI, upscaled for visibility."""
    if len(pixels) != side * side:
        raise ValueError(f"expected {side * side} pixels, got {len(pixels)}")
    rows = []
    for y in range(side * scale):
        source = pixels[(y // scale) * side : (y // scale + 1) * side]
        row = bytes(255 - min(16, max(0, v)) * 255 // 16 for v in source for _ in range(scale))
        rows.append(b"\x00" + row)
    width = height = side * scale
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + _png_chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def malformed_predictions(project: str, count: int) -> list[tuple[str, bytes]]:
    """Deliberately broken prediction records (key, raw value) that must land in the DLQ."""
    samples: list[bytes] = [
        b"{not json at all",
        (
            b'{"prediction_id": "p-bad-score", "item_id": "bad-score", "project": "%s", '
            b'"task_type": "classification", "label": {"kind": "classification", "label": "1", '
            b'"scores": {"1": 1.7}}}'
        )
        % project.encode(),
        b'{"item_id": 12, "project": "%s"}' % project.encode(),
        b"[]",
        b'{"schema_version": 99}',
    ]
    return [(f"bad-{i:03d}", samples[i % len(samples)]) for i in range(count)]
