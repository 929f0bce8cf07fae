"""The demo's model serving: a real classifier, an honest stream, no ground truth in events."""

from __future__ import annotations

import base64
import json

import pytest

from loupe.demo.model_serving import (
    CLASSES,
    DemoStream,
    StreamConfig,
    build_stream,
    malformed_predictions,
    png_data_uri,
    to_prediction,
)
from loupe.schemas import ContractError, Prediction, decode

SMALL = StreamConfig(items=300, warmup_items=120, seed=3, ensemble=2)


@pytest.fixture(scope="module")
def stream() -> DemoStream:
    return build_stream(SMALL)


def test_stream_has_the_requested_items_and_held_out_share(stream: DemoStream) -> None:
    assert len(stream.items) == SMALL.items
    held = stream.held_out_ids()
    assert len(held) == round(SMALL.items * SMALL.novel_share)
    assert len({item.item_id for item in stream.items}) == SMALL.items


def test_warmup_prefix_is_familiar_only(stream: DemoStream) -> None:
    warmup = stream.items[: SMALL.warmup_items]
    assert all(item.truth != SMALL.held_out for item in warmup)
    assert any(item.truth == SMALL.held_out for item in stream.items[SMALL.warmup_items :])


def test_model_never_predicts_the_held_out_class(stream: DemoStream) -> None:
    assert all(item.predicted != SMALL.held_out for item in stream.items)
    assert all(item.scores[SMALL.held_out] == 0.0 for item in stream.items)
    assert set(stream.items[0].scores) == set(CLASSES)


def test_model_is_a_real_classifier_on_familiar_digits(stream: DemoStream) -> None:
    familiar = [item for item in stream.items if item.truth != SMALL.held_out]
    accuracy = sum(item.predicted == item.truth for item in familiar) / len(familiar)
    assert accuracy > 0.9
    assert stream.model.train_accuracy > 0.95


def test_same_seed_same_stream() -> None:
    first = build_stream(StreamConfig(items=120, warmup_items=40, seed=11, ensemble=1))
    second = build_stream(StreamConfig(items=120, warmup_items=40, seed=11, ensemble=1))
    assert first.items == second.items


def test_prediction_event_is_valid_and_carries_no_truth(stream: DemoStream) -> None:
    item = next(i for i in stream.items if i.truth != i.predicted)
    event = to_prediction(item, stream.model, "digits")
    raw = event.to_json_bytes()
    parsed = decode(Prediction, raw)
    assert parsed.label.label == item.predicted  # type: ignore[union-attr]
    assert parsed.embedding is not None and len(parsed.embedding) == len(item.embedding)
    body = json.loads(raw)
    assert "truth" not in raw.decode()
    assert body["item_id"] == item.item_id


def test_png_data_uri_is_a_png_of_the_upscaled_digit() -> None:
    uri = png_data_uri(tuple(range(16)) * 4)
    header, payload = uri.split(",", 1)
    assert header == "data:image/png;base64"
    png = base64.b64decode(payload)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert int.from_bytes(png[16:20], "big") == 32  # width = 8 * scale 4
    with pytest.raises(ValueError, match="64 pixels"):
        png_data_uri((0,) * 10)


def test_malformed_predictions_all_fail_the_contract() -> None:
    bad = malformed_predictions("digits", 7)
    assert len(bad) == 7
    assert len({key for key, _ in bad}) == 7
    for _, raw in bad:
        with pytest.raises(ContractError):
            decode(Prediction, raw)


def test_too_many_items_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="streamable images"):
        build_stream(StreamConfig(items=5_000))
    with pytest.raises(ValueError, match="held_out"):
        build_stream(StreamConfig(held_out="x"))


@pytest.mark.parametrize("items", [70, 700])
def test_every_allowed_item_count_can_be_streamed(items: int) -> None:
    config = StreamConfig(items=items, warmup_items=items * 4 // 7, ensemble=1)
    stream = build_stream(config)
    assert len(stream.items) == items
    assert len(stream.held_out_ids()) == round(items * config.novel_share)
