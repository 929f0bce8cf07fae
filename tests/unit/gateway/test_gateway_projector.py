"""What Redis keeps of a request or a label: the event less its prediction's embedding."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from harness.samples import classification, resolved_label, review_request
from loupe.gateway.projector import LABEL_PREDICTION, REQUEST_PREDICTION, without_embedding
from loupe.schemas import ResolvedLabel, ReviewRequest

floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


def _request(embedding: list[float] | None) -> ReviewRequest:
    prediction = classification("img-1").model_copy(update={"embedding": embedding})
    return review_request(prediction)


@given(st.lists(floats, min_size=1, max_size=64))
def test_a_requests_embedding_is_dropped_and_the_rest_kept(embedding: list[float]) -> None:
    request = _request(embedding)
    stored = without_embedding(request.to_json_bytes(), REQUEST_PREDICTION)
    assert b"embedding" not in stored
    assert ReviewRequest.model_validate_json(stored) == _request(None)


def test_an_event_without_an_embedding_is_kept_byte_for_byte() -> None:
    raw = _request(None).to_json_bytes()
    assert b'"embedding":null' in raw
    assert without_embedding(raw, REQUEST_PREDICTION) is raw


def test_json_written_with_spaces_loses_its_embedding_too() -> None:
    spaced = json.dumps(json.loads(_request([0.5, 0.25]).to_json_bytes()), indent=1).encode()
    assert b'"embedding": [' in spaced
    stored = without_embedding(spaced, REQUEST_PREDICTION)
    assert ReviewRequest.model_validate_json(stored) == _request(None)


def test_a_labels_provenance_loses_its_predictions_embedding() -> None:
    request = _request([0.1] * 512)
    label = resolved_label(request, revision=2)
    stored = without_embedding(label.to_json_bytes(), LABEL_PREDICTION)
    kept = ResolvedLabel.model_validate_json(stored)
    assert kept.provenance.prediction.embedding is None
    assert kept.model_copy(update={"provenance": label.provenance}) == label


def test_json_of_another_shape_is_kept_as_it_is_never_an_error() -> None:
    """The rebuild checks labels loosely (``HistoryIndex.add_resolved``): a label it kept may
    have no provenance, or a provenance whose prediction is not an object; storing it must not
    stop the rebuild (an error here once killed the consumer thread on every restart)."""
    for raw in (
        b'{"item_id":"x","revision":9,"method":"auto","other":{"embedding":[1]}}',
        b'{"item_id":"x","provenance":{"prediction":[]},"embedding":[1]}',
        b'{"item_id":"x","provenance":null,"embedding":[1]}',
        b'{"embedding":[1], not json',
    ):
        assert without_embedding(raw, LABEL_PREDICTION) is raw


def test_integers_beyond_64_bits_stay_exact() -> None:
    """The contract leaves some integers unbounded (``policy_version``); orjson would read one
    beyond 64 bits as a float, and the stored request would then fail its strict decode."""
    request = _request([0.5]).model_copy(update={"policy_version": 2**64})
    stored = without_embedding(request.to_json_bytes(), REQUEST_PREDICTION)
    kept = ReviewRequest.model_validate_json(stored)
    assert kept.policy_version == 2**64
    assert kept.prediction.embedding is None
