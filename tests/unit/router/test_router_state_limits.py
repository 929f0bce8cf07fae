"""Router state is bounded whatever producers send (issue 11, point 2): per-project caps on
classes, model versions, data types and novelty references, and no class outside the project's
label schema is ever stored."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import loupe.schemas as schemas
from harness import samples
from loupe.router.engine import InputRecord, OutputTopics, Route, Routed, RoutingEngine
from loupe.router.policies import PolicyBook
from loupe.router.state import PartitionState, ProjectState
from loupe.schemas import Box as SchemaBox
from loupe.schemas import (
    BoxesLabel,
    ClassificationLabel,
    DataRef,
    LabelSchema,
    LabelSchemaRef,
    ModelRef,
    Prediction,
    ReasonCode,
    ReviewPolicy,
    ReviewRequest,
    decode,
)

TOPICS = OutputTopics(resolved="t.resolved", requests="t.requests", dlq="t.dlq")
NOW = "2026-11-27T18:00:00+00:00"


def engine(schema_version: int = 1, **policy: Any) -> RoutingEngine:
    book = PolicyBook()
    base = samples.policy()
    update: dict[str, Any] = {
        "review": ReviewPolicy(spot_check_rate=0.0, rare_class_floor=0.0),
        "label_schema": LabelSchema(id="animals", version=schema_version, classes=samples.CLASSES),
        **policy,
    }
    book.offer(base.model_copy(update=update), 1, "test")
    return RoutingEngine(book, TOPICS, max_payload_bytes=65_536, max_record_bytes=960_000)


def route(router: RoutingEngine, state: PartitionState, prediction: Prediction) -> Routed:
    raw = prediction.to_json_bytes()
    return router.route(InputRecord(raw, b"k", "t.predictions", 0, 0, None), state, NOW)


def classified(item: str, label: str = "cat", **update: Any) -> Prediction:
    scores = {label: 0.95, **({"dog": 0.05} if label != "dog" else {"cat": 0.05})}
    base = samples.classification(item).model_copy(
        update={"label": ClassificationLabel(label=label, scores=scores)}
    )
    return base.model_copy(update=update)


def stored_classes(project: ProjectState) -> set[str]:
    return set(project.class_counts) | {cls for _, cls in project.references}


def test_classes_outside_the_label_schema_are_never_stored_whatever_its_version() -> None:
    router, state = engine(schema_version=2), PartitionState(0)
    stale = LabelSchemaRef(id="animals", version=1)
    routed = []
    for i in range(300):
        routed.append(route(router, state, classified(f"c{i}", f"zebra-{i}", label_schema=stale)))
        boxes = BoxesLabel(
            image=samples.boxes().label.image,  # type: ignore[union-attr]
            boxes=[
                SchemaBox(label=f"okapi-{i}-{j}", score=0.9, x=1, y=1, w=2, h=2) for j in range(20)
            ],
        )
        routed.append(
            route(
                router,
                state,
                samples.boxes(f"b{i}").model_copy(
                    update={"label": boxes, "label_schema": stale, "embedding": [0.5, 1.5]}
                ),
            )
        )
    project = state.project("demo")
    assert stored_classes(project) <= {*samples.CLASSES, "*"}, sorted(stored_classes(project))[:5]
    assert project.observations == 0  # and the class shares are not diluted by them
    assert all(r.route is Route.REVIEW and ReasonCode.SCHEMA_CHANGED in r.reasons for r in routed)
    # a known class under the stale schema is still counted
    route(router, state, classified("known", "dog", label_schema=stale))
    assert project.class_counts == {"dog": 1}


def test_model_versions_beyond_the_cap_are_reviewed_and_never_kept() -> None:
    router, state = engine(), PartitionState(0)
    routed = [
        route(router, state, classified(f"i{i}", model=ModelRef(name="clf", version=f"v{i}")))
        for i in range(150)
    ]
    project = state.project("demo")
    assert len(project.model_versions) == 100, len(project.model_versions)
    assert len(project.references) == 100
    assert all(ReasonCode.STATE_LIMIT not in r.reasons for r in routed[:100])
    for late in routed[100:]:
        assert late.route is Route.REVIEW and late.reasons == (ReasonCode.STATE_LIMIT,)
    request = decode(ReviewRequest, routed[-1].outputs[0].value)
    assert "100 model versions kept, the limit: clf@v149 is not remembered" in (
        request.reasons[0].detail
    )
    # a version already kept still routes as before
    assert (
        route(router, state, classified("again", model=ModelRef(name="clf", version="v3")))[0]
        is Route.AUTO
    )


def test_data_types_beyond_the_cap_are_reviewed_and_never_kept() -> None:
    router, state = engine(), PartitionState(0)
    for i in range(80):
        data = DataRef(uri=f"s3://b/{i}", mime_type=f"application/x-{i:03d}")
        routed = route(router, state, classified(f"d{i}", data=data))
    assert len(state.project("demo").data_types) == 64
    assert routed.reasons == (ReasonCode.STATE_LIMIT,)


def test_class_and_reference_caps_come_from_the_policy() -> None:
    limits = schemas.StateLimits(max_classes=2, max_references=2)
    router, state = engine(state_limits=limits), PartitionState(0)
    assert route(router, state, classified("a", "cat")).reasons == (ReasonCode.NOVEL,)
    assert route(router, state, classified("b", "dog")).route is Route.AUTO
    fox = route(router, state, classified("c", "fox"))
    assert fox.reasons == (ReasonCode.STATE_LIMIT,)
    project = state.project("demo")
    assert set(project.class_counts) == {"cat", "dog"} and len(project.references) == 2
    # without embeddings the class cap alone holds
    plain = route(router, state, classified("d", "fox", embedding=None))
    assert plain.reasons == (ReasonCode.STATE_LIMIT,) and "fox" not in project.class_counts


hostile = st.tuples(
    st.sampled_from([*samples.CLASSES, "zebra", "gnu", "okapi", "x" * 128]),
    st.integers(0, 30),  # model version
    st.one_of(st.none(), st.integers(0, 30).map(lambda i: f"type/{i}")),
    st.sampled_from([1, 2]),  # label schema version named by the prediction
    st.one_of(st.none(), st.lists(st.floats(-3, 3), min_size=3, max_size=3)),
)


@settings(max_examples=60, deadline=None)
@given(stream=st.lists(hostile, min_size=1, max_size=120), caps=st.tuples(*[st.integers(1, 4)] * 4))
def test_no_stream_takes_the_state_beyond_its_caps(
    stream: list[tuple[str, int, str | None, int, list[float] | None]],
    caps: tuple[int, int, int, int],
) -> None:
    limits = schemas.StateLimits(
        max_classes=caps[0],
        max_model_versions=caps[1],
        max_data_types=caps[2],
        max_references=caps[3],
    )
    router, state = engine(state_limits=limits), PartitionState(0)
    project = state.project("demo")
    for n, (label, version, mime, schema, embedding) in enumerate(stream):
        data = DataRef(text="t", mime_type=mime)
        prediction = classified(
            f"h{n}",
            label,
            model=ModelRef(name="m", version=str(version)),
            data=data,
            label_schema=LabelSchemaRef(id="animals", version=schema),
            embedding=embedding,
        )
        before = (project.meta_json(), {k: r.to_json() for k, r in project.references.items()})
        routed = route(router, state, prediction)
        unknown_under_current_schema = schema == 1 and label not in samples.CLASSES
        assert (routed.route is Route.DLQ) == unknown_under_current_schema, routed
        if ReasonCode.STATE_LIMIT in routed.reasons:
            after = (project.meta_json(), {k: r.to_json() for k, r in project.references.items()})
            assert after == before
        assert len(project.class_counts) <= caps[0] and len(project.model_versions) <= caps[1]
        assert len(project.data_types) <= caps[2] and len(project.references) <= caps[3]
        assert stored_classes(project) <= {*samples.CLASSES, "*"}
