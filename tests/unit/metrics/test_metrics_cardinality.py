"""Issue 19, defect 8: producers' project and model names cannot grow the label sets, and the
service does not log one warning per invalid record."""

from __future__ import annotations

import logging
import zlib

import pytest

from loupe.metrics.aggregate import MetricsState
from loupe.metrics.exporter import ExportOptions, ServiceStatus, families
from loupe.metrics.scenario import MODEL, PROJECT, START, build, policy
from loupe.metrics.service import MetricsService
from loupe.metrics.settings import MetricsSettings
from loupe.schemas import (
    ClassificationLabel,
    LabelSchemaRef,
    ModelRef,
    Prediction,
    ResolvedLabel,
    ReviewRequest,
    TaskType,
)
from unit.metrics.conftest import feed, scrape

UNKNOWN_PROJECT, OTHER_MODEL = "unknown", "other"
MAX_MODELS_PER_PROJECT = 20
"""The documented caps (docs/metrics.md); literals, so the test also runs against older code."""


def prediction(n: int, project: str = PROJECT, model: str = MODEL) -> Prediction:
    return Prediction(
        prediction_id=f"p{n}",
        item_id=f"i{n}",
        project=project,
        model=ModelRef(name=model, version="1"),
        task_type=TaskType.CLASSIFICATION,
        label=ClassificationLabel(label="cat"),
        label_schema=LabelSchemaRef(id="animals", version=1),
        produced_at=START,
    )


def predictions_series(state: MetricsState) -> dict[tuple[str, str], float]:
    samples = scrape(state)
    return {
        (dict(labels)["project"], dict(labels)["model"]): value
        for (name, labels), value in samples.items()
        if name == "loupe_predictions_total"
    }


def test_unknown_projects_are_one_label_value() -> None:
    state = MetricsState()
    state.on_policy(policy())
    for n in range(2_000):
        state.on_prediction(prediction(n, project=f"hostile-{n}", model=f"m-{n}"))
    for n in range(10):
        state.on_prediction(prediction(10_000 + n))
    series = predictions_series(state)
    assert series == {(UNKNOWN_PROJECT, OTHER_MODEL): 2_000, (PROJECT, MODEL): 10}
    kept = [key for key in state.counters if key[0] == "predictions"]
    assert len(kept) <= 102  # bounded memory: 100 unknown names kept, one "unknown", the known


def test_a_projects_predictions_read_before_its_policy_keep_their_project() -> None:
    """Topics replay in no particular order: predictions may come before the policy record."""
    state = MetricsState()
    for n in range(5):
        state.on_prediction(prediction(n))
    assert predictions_series(state) == {(UNKNOWN_PROJECT, OTHER_MODEL): 5}
    state.on_policy(policy())
    assert predictions_series(state) == {(PROJECT, MODEL): 5}


def test_models_beyond_the_cap_are_folded_into_other() -> None:
    state = MetricsState()
    update = policy()
    named = update.model_copy(
        update={
            "policy": update.policy.model_copy(
                update={
                    "confidence": update.policy.confidence.model_copy(
                        update={"per_model": {"named-late": 0.9}}
                    )
                }
            )
        }
    )
    state.on_policy(named)
    for n in range(200):
        state.on_prediction(prediction(n, model=f"model-{n:03d}"))
    state.on_prediction(prediction(999, model="named-late"))
    series = predictions_series(state)
    models = {model for _, model in series}
    assert len(models) == MAX_MODELS_PER_PROJECT + 2  # the first 20, "other", the named one
    assert "named-late" in models and OTHER_MODEL in models
    assert series[PROJECT, OTHER_MODEL] == 200 - MAX_MODELS_PER_PROJECT
    assert sum(series.values()) == 201


def _renamed(event: object, model: str) -> object:
    """The event with its prediction's model renamed (review requests and resolved labels)."""
    if isinstance(event, ReviewRequest):
        return event.model_copy(update={"prediction": _with_model(event.prediction, model)})
    if isinstance(event, ResolvedLabel):
        provenance = event.provenance.model_copy(
            update={"prediction": _with_model(event.provenance.prediction, model)}
        )
        return event.model_copy(update={"provenance": provenance})
    if isinstance(event, Prediction):
        return _with_model(event, model)
    return event


def _with_model(p: Prediction, model: str) -> Prediction:
    return p.model_copy(update={"model": ModelRef(name=model, version="1")})


def test_every_per_model_family_stays_bounded() -> None:
    """Items reviewed and spot-checked under 60 model names: every family with a model label
    shows at most the cap plus "other"."""
    records = [
        (spec, key, _renamed(event, f"model-{zlib.crc32(key.encode()) % 60:02d}"))
        for spec, key, event in build(600).records
    ]
    state = feed(MetricsState(), records)  # type: ignore[arg-type]
    assert (
        len({m for k in state.keys("reviewed_items") for m in k[1:2]}) > MAX_MODELS_PER_PROJECT + 1
    )
    checked = 0
    for family in families(state, ExportOptions(), ServiceStatus(caught_up=True)):
        models = {sample.labels["model"] for sample in family.samples if "model" in sample.labels}
        if models:
            checked += 1
            assert len(models) <= MAX_MODELS_PER_PROJECT + 1, (family.name, len(models))
    assert checked >= 8


class FakeMessage:
    def __init__(self, topic: str, offset: int, value: bytes) -> None:
        self._topic, self._offset, self._value = topic, offset, value

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def value(self) -> bytes:
        return self._value

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


def test_invalid_predictions_do_not_log_one_warning_each(caplog: pytest.LogCaptureFixture) -> None:
    service = MetricsService(MetricsSettings(kafka_bootstrap_servers="127.0.0.1:1"))
    topic = service.settings.topic("predictions")
    with caplog.at_level(logging.WARNING, logger="loupe.metrics.service"):
        for n in range(1_000):
            service.handle(FakeMessage(topic, n, b'{"not": "a prediction", "n": %d}' % n))
    warnings = [r for r in caplog.records if r.name == "loupe.metrics.service"]
    assert service.state.counters["events", "predictions", "invalid"] == 1_000
    assert 1 <= len(warnings) <= 5, len(warnings)
