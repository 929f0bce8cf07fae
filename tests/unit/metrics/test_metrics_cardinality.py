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
from loupe.runtime.logs import RepeatLimiter, install_repeat_limiter
from loupe.schemas import (
    ClassificationLabel,
    LabelSchemaRef,
    ModelRef,
    Prediction,
    ResolutionMethod,
    ResolvedLabel,
    ReviewRequest,
    TaskType,
)
from unit.metrics.conftest import feed, scrape

UNKNOWN_PROJECT, OTHER_MODEL = "_unknown", "_other"
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
    sent = {e.prediction.model.name for _, _, e in records if isinstance(e, ReviewRequest)}
    assert len(sent) > MAX_MODELS_PER_PROJECT + 1
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


# --- review of issue 19, defect 8 (fold values, monotonic counters, labels fixed at arrival) ---


def test_a_real_project_or_model_named_like_the_fold_values_keeps_its_own_series() -> None:
    """``unknown`` is a legal project name and ``other`` / ``_other`` legal model names: their
    predictions never merge with the series that unknown projects and capped models fold into."""
    state = MetricsState()
    unknown_named = policy().model_copy(update={"project": "unknown"})
    state.on_policy(policy())
    state.on_policy(unknown_named)
    for n in range(3):
        state.on_prediction(prediction(n, project="unknown", model="other"))
    for n in range(5):
        state.on_prediction(prediction(100 + n, project="stranger", model="m"))
    series = predictions_series(state)
    assert series["unknown", "other"] == 3
    assert sorted(series.values()) == [3, 5], series

    for n, model in enumerate(["other", "_other"] + [f"m{i:02d}" for i in range(18)]):
        for k in range(n + 1):  # a distinct count per model: merged series would show a sum
            state.on_prediction(prediction(1_000 * (n + 1) + k, model=model))
    for n in range(25):
        state.on_prediction(prediction(50_000 + n, model=f"late-{n:02d}"))
    own = {
        model: total
        for (project, model), total in predictions_series(state).items()
        if project == PROJECT
    }
    assert own["other"] == 1
    assert sorted(own.values()) == [*range(1, 21), 25], own
    assert len(own) == MAX_MODELS_PER_PROJECT + 1


def test_predictions_counters_never_decrease_when_a_policy_arrives_late() -> None:
    """A project whose policy is read after its predictions (while the service is live) keeps
    its earlier predictions in the folded series: a counter that went down would read as a
    reset to Prometheus."""
    state = MetricsState()
    for n in range(5):
        state.on_prediction(prediction(n))
    before = predictions_series(state)
    state.on_policy(policy())
    for n in range(3):
        state.on_prediction(prediction(100 + n))
    after = predictions_series(state)
    for labels, total in before.items():
        assert after.get(labels, 0) >= total, (labels, before, after)
    assert sum(after.values()) == 8
    assert after[PROJECT, MODEL] == 3


def test_replayed_predictions_count_for_their_project_once_the_service_goes_live() -> None:
    """Before the start-up replay is complete nothing is exported, so predictions read before
    their policy record still count for the project; once live, labels never move."""
    state = MetricsState(live=False)
    for n in range(5):
        state.on_prediction(prediction(n))
    state.on_prediction(prediction(99, project="stranger"))
    state.on_policy(policy())
    state.go_live()
    series = predictions_series(state)
    assert series[PROJECT, MODEL] == 5
    assert sum(series.values()) == 6 and len(series) == 2


def _without_first_sight(records: list) -> list:  # type: ignore[type-arg]
    """Records whose models are first seen through spot checks and escalations (predictions
    and revision-1 labels not read yet, as in a replay where those topics lag behind)."""
    return [
        (spec, key, event)
        for spec, key, event in records
        if not isinstance(event, Prediction)
        and not (isinstance(event, ResolvedLabel) and event.method is ResolutionMethod.AUTO)
    ]


def _model_sets(state: MetricsState) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for family in families(state, ExportOptions(), ServiceStatus(caught_up=True)):
        for sample in family.samples:
            if "model" in sample.labels:
                out.setdefault(family.name, set()).add(sample.labels["model"])
    return out


def test_which_models_keep_their_name_does_not_depend_on_scrapes() -> None:
    """A model's label is decided when it first arrives, not when a scrape first sees it: the
    same records give the same series whether scraped after every record or only at the end,
    and a model keeps one label in every family."""
    records = _without_first_sight(
        [
            (spec, key, _renamed(event, f"model-{59 - zlib.crc32(key.encode()) % 60:02d}"))
            for spec, key, event in build(600).records
        ]
    )
    scraped_often, scraped_once = MetricsState(), MetricsState()
    for record in records:
        feed(scraped_often, [record])  # type: ignore[list-item]
        families(scraped_often, ExportOptions(), ServiceStatus(caught_up=True))
    feed(scraped_once, records)  # type: ignore[arg-type]
    assert scrape(scraped_often) == scrape(scraped_once)
    sets = _model_sets(scraped_once)
    own = sets["loupe_reviewed_items"] | sets["loupe_spot_check_samples"]
    assert len(own - {"_other"}) <= MAX_MODELS_PER_PROJECT


def test_item_aggregates_are_kept_per_bounded_label_not_per_model_name() -> None:
    """600 items from 600 model names: the per-model item tallies kept in memory stay bounded."""
    records = [
        (spec, key, _renamed(event, f"model-{key}")) for spec, key, event in build(600).records
    ]
    state = feed(MetricsState(), records)  # type: ignore[arg-type]
    per_model = ("reviewed_items", "model_errors", "spot_samples", "spot_errors")
    names = {key[2] for key in state.aggregates if key[0] in per_model}
    assert len({key[2] for key in state.aggregates if key[0] == "reviewed_items"}) > 1
    assert len(names) <= MAX_MODELS_PER_PROJECT + 1, len(names)
    counters = {key[2] for key in state.counters if key[0] in ("predictions", "routed")}
    assert len(counters) <= MAX_MODELS_PER_PROJECT + 1, len(counters)


def test_the_service_uses_the_process_s_one_repeat_limiter() -> None:
    """The service's logger is limited by the same limiter the root handlers get."""
    filters = logging.getLogger("loupe.metrics.service").filters
    limiters = [f for f in filters if isinstance(f, RepeatLimiter)]
    assert limiters == [install_repeat_limiter()]
