"""Schemathesis against the live OpenAPI schema (real Kafka and Redis): no input gives a 5xx.

The gateway is seeded first, so the fuzzer gets past the 404s: review requests of every task type
are queued from real ``review.requests`` records, reviewers claim, vote and comment through the
API (decisions acknowledged by Kafka, audit from the gateway's own events), and a resolved label,
a conflict and a policy arrive on their topics as the resolver and a lead would publish them.
Each operation is then fuzzed with a valid token of each role it admits, drawing path parameters
(task, item, project, user ids) and ``decision_id`` from the seeded ones half of the time, on top
of known-good requests (every one run once) and wholly generated ones (random ids, invalid input).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from harness import samples
from harness.kafka import produce
from harness.samples import AT
from loupe.gateway.logic import Role
from loupe.gateway.users import User, UsersFile
from loupe.schemas import (
    Actor,
    LabelSchema,
    PolicyUpdate,
    ProjectPolicy,
    Provenance,
    ResolutionMethod,
    ResolvedLabel,
    ReviewRequest,
    Tier,
)
from loupe.schemas.topics import CONTROL_POLICY, LABELS_CONFLICTS, LABELS_RESOLVED, REVIEW_REQUESTS

from .conftest import PEPPER, request_for, serve

EXAMPLES_PER_OPERATION = 40
"""Generated requests per operation (plus its known-good ones): ~1,000 requests in all."""

VICTIMS = ["victim-1", "victim-2"]
"""Users the admin operations may change (never the fuzzing callers themselves)."""


@dataclass(frozen=True)
class Known:
    """A request that reaches the operation's success path with this role's token."""

    role: str
    path_parameters: dict[str, Any] | None = None
    query: dict[str, Any] | None = None
    body: Any = None


@dataclass
class Seeded:
    """What is in the gateway before fuzzing starts."""

    tokens: dict[str, str]
    ids: dict[str, list[str]]
    known: dict[str, list[Known]] = field(default_factory=dict)


@dataclass
class Tally:
    """Requests and their statuses, per operation."""

    statuses: dict[str, list[int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def add(self, label: str, response: requests.Response) -> None:
        status = response.status_code
        self.statuses.setdefault(label, []).append(status)
        if status >= 500:
            self.failures.append(f"{label}: {status} {response.text[:200]}")
        sent = response.request.headers.get("Authorization")
        if status == 401 and sent:  # negative cases may leave the header out on purpose
            # every caller holds a valid token of a role the operation admits
            self.failures.append(f"{label}: 401 for a valid token: {response.text[:200]}")
        if status >= 400 and "json" in response.headers.get("content-type", ""):
            body = response.json()
            if set(body) != {"error"}:
                self.failures.append(f"{label}: error body {body}")


def _users(path) -> dict[str, str]:
    """One user and token per role, plus seeders and victims (tokens by role or user id)."""
    users = UsersFile(path)
    tokens = {}
    for role in Role:
        users.add(User(id=f"fuzz-{role.value}", role=role, projects=["*"]))
        tokens[role.value] = users.issue_token(f"fuzz-{role.value}", PEPPER)[0]
    for user_id in ("seed-ann", "seed-bob", *VICTIMS):
        users.add(User(id=user_id, role=Role.REVIEWER, projects=["*"]))
        tokens[user_id] = users.issue_token(user_id, PEPPER)[0]
    return tokens


def _wait(check, what: str, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _seed(http: httpx.Client, tokens: dict[str, str], bootstrap: str, prefix: str) -> Seeded:
    def as_(who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[who]}"}

    requests_ = [
        *(request_for(f"fz-cls-{n}", overlap=2, age_s=60 - n) for n in range(1, 4)),
        *(request_for(f"fz-box-{n}", kind="bbox", age_s=50 - n) for n in range(1, 3)),
        request_for("fz-trk-1", kind="track", age_s=40),
        request_for("fz-res-1", age_s=30),
        request_for("fz-esc-1", tier=Tier.LEAD, escalation_level=1, age_s=20),
    ]
    by_item = {r.item_id: r for r in requests_}
    produce(bootstrap, f"{prefix}{REVIEW_REQUESTS.name}", [(r.item_id, r) for r in requests_])
    _wait(
        lambda: all(
            http.get(f"/v1/items/{r.item_id}", headers=as_("lead")).status_code == 200
            for r in requests_
        ),
        "requests queued",
    )

    def approve_body(request: ReviewRequest, key: str) -> dict[str, Any]:
        label = request.prediction.label.model_dump(mode="json")
        return {"action": "approve", "label": label, "idempotency_key": key}

    # the real pipeline on the gateway's side: claims, votes (acknowledged by Kafka), comments
    voted: list[str] = []
    for who, claims in (("seed-ann", 3), ("seed-bob", 2)):
        for n in range(claims):
            claimed = http.post("/v1/tasks/claim", headers=as_(who), json={})
            assert claimed.status_code == 200, claimed.text
            task = claimed.json()["task"]
            body = approve_body(by_item[task["item_id"]], f"{who}-{n}")
            decided = http.post(
                f"/v1/tasks/{task['task_id']}/decision", headers=as_(who), json=body
            )
            assert decided.status_code == 200, decided.text
            voted.append(task["item_id"])
    for item_id in ("fz-cls-1", "fz-box-1"):
        posted = http.post(
            f"/v1/items/{item_id}/comments", headers=as_("seed-ann"), json={"text": "a fox?"}
        )
        assert posted.status_code == 201, posted.text

    # what the resolver and a lead publish: a final label, a conflict, a policy
    resolved = [
        ResolvedLabel(
            item_id=item_id,
            project="demo",
            revision=2,
            label=by_item[item_id].prediction.label,
            method=ResolutionMethod.MAJORITY,
            provenance=Provenance(
                prediction=by_item[item_id].prediction, request_ids=[f"req-{item_id}"]
            ),
            first_seen_at=AT,
            resolved_at=AT,
        )
        for item_id in ("fz-res-1", voted[0])
    ]
    produce(bootstrap, f"{prefix}{LABELS_RESOLVED.name}", [(r.item_id, r) for r in resolved])
    conflict = samples.conflict(
        "fz-esc-1",
        conflict_id="fz-conflict-1",
        voters=("seed-ann", "seed-bob"),
        escalated_to=Tier.LEAD,
    )
    produce(bootstrap, f"{prefix}{LABELS_CONFLICTS.name}", [(conflict.item_id, conflict)])
    policy = ProjectPolicy(
        project="demo", label_schema=LabelSchema(id="animals", version=1, classes=["cat", "dog"])
    )
    update = PolicyUpdate(
        project="demo",
        version=1,
        policy=policy,
        changed_by=Actor(id="fuzz-lead", role="lead"),
        reason="seed",
        at=AT,
    )
    produce(bootstrap, f"{prefix}{CONTROL_POLICY.name}", [("demo", update)])
    _wait(
        lambda: (
            http.get("/v1/conflicts", headers=as_("lead")).json()["conflicts"]
            and http.get("/v1/policy/demo", headers=as_("lead")).status_code == 200
            and all(
                http.get(f"/v1/items/{r.item_id}", headers=as_("lead")).json()["resolved"]
                for r in resolved
            )
        ),
        "resolution, conflict and policy consumed",
    )
    decision_ids = [
        vote_["decision_id"]
        for item_id in dict.fromkeys(voted)
        for vote_ in http.get(f"/v1/items/{item_id}", headers=as_("lead")).json()["votes"] or []
    ]
    # each worker role holds a lease to heartbeat and decide, and the lead a second to release
    held: dict[str, str] = {}
    for role in ("reviewer", "senior", "lead"):
        claimed = http.post("/v1/tasks/claim", headers=as_(role), json={})
        assert claimed.status_code == 200, claimed.text
        held[role] = claimed.json()["task"]["task_id"]
    released = http.post("/v1/tasks/claim", headers=as_("lead"), json={})
    assert released.status_code == 200, released.text

    task_ids = [r.request_id for r in requests_]
    token_ids = {
        victim: [
            t["token_id"]
            for t in http.get(f"/v1/users/{victim}/tokens", headers=as_("admin")).json()["tokens"]
        ]
        for victim in VICTIMS
    }
    seeded = Seeded(
        tokens=tokens,
        ids={
            "task_id": task_ids,
            "item_id": list(by_item),
            "project": ["demo"],
            "user_id": VICTIMS,
            "decision_id": decision_ids,
            "token_id": [t for ids in token_ids.values() for t in ids],
        },
    )
    known = seeded.known
    for role, task_id in held.items():
        request = next(r for r in requests_ if r.request_id == task_id)
        path = {"task_id": task_id}
        known.setdefault("POST /v1/tasks/{task_id}/heartbeat", []).append(Known(role, path))
        known.setdefault("POST /v1/tasks/{task_id}/decision", []).append(
            Known(role, path, body=approve_body(request, f"fuzz-{role}"))
        )
    release = {"task_id": released.json()["task"]["task_id"]}
    known["POST /v1/tasks/{task_id}/release"] = [Known("lead", release)]
    known["POST /v1/tasks/claim"] = [Known("reviewer", body={}), Known("lead", body={})]
    known["POST /v1/tasks/{task_id}/reassign"] = [
        Known("lead", {"task_id": task_ids[2]}, body={"to_user": "fuzz-reviewer", "reason": "f"}),
        Known("lead", {"task_id": task_ids[3]}, body={"tier": "senior"}),
    ]
    items = [{"item_id": item_id} for item_id in by_item]
    for label, role in (
        ("GET /v1/items/{item_id}", "reviewer"),
        ("GET /v1/items/{item_id}/comments", "annotator"),
        ("GET /v1/items/{item_id}/history", "senior"),
        ("GET /v1/items/{item_id}/diff", "reviewer"),
    ):
        known[label] = [Known(role, item) for item in items]
    known["GET /v1/items/{item_id}/diff"] += [
        Known("lead", {"item_id": voted[-1]}, query={"decision_id": d}) for d in decision_ids
    ]
    known["POST /v1/items/{item_id}/comments"] = [
        Known("senior", {"item_id": "fz-trk-1"}, body={"text": "frame 2 swaps ids"})
    ]
    known["POST /v1/items/{item_id}/resolve"] = [
        Known(
            "lead",
            {"item_id": "fz-esc-1"},
            body={
                "action": "correct",
                "label": {"kind": "classification", "label": "dog"},
                "idempotency_key": "fz-final-1",
            },
        ),
        Known(
            "lead",
            {"item_id": "fz-cls-3"},
            body={"action": "reject", "reason": "blurry", "idempotency_key": "fz-final-2"},
        ),
    ]
    now = datetime.now(UTC).isoformat()
    known["GET /v1/conflicts"] = [
        Known("lead", query={"project": "demo", "before": now}),
        Known("lead", query={"before": "0001-01-01T00:00:00"}),  # issue 19, defect 5
        Known("lead", query={"before": "0001-01-01T00:00:00+01:00"}),
    ]
    known["GET /v1/policy/{project}"] = [Known("lead", {"project": "demo"})]
    known["PUT /v1/policy/{project}"] = [
        Known("lead", {"project": "demo"}, body={"policy": policy.model_dump(mode="json")})
    ]
    known["GET /v1/reviewers/quality"] = [Known("lead")]
    known["GET /v1/me"] = [Known(role.value) for role in Role]
    known["GET /v1/users/{user_id}"] = [Known("admin", {"user_id": v}) for v in VICTIMS]
    known["PATCH /v1/users/{user_id}"] = [
        Known("admin", {"user_id": "victim-1"}, body={"skills": ["de"], "name": "V"})
    ]
    known["POST /v1/users/{user_id}/tokens"] = [Known("admin", {"user_id": "victim-2"}, body={})]
    known["DELETE /v1/users/{user_id}/tokens"] = [Known("admin", {"user_id": "victim-2"})]
    known["GET /v1/users/{user_id}/tokens"] = [Known("admin", {"user_id": v}) for v in VICTIMS]
    known["DELETE /v1/users/{user_id}/tokens/{token_id}"] = [
        Known("admin", {"user_id": "victim-1", "token_id": token_ids["victim-1"][0]})
    ]
    known["POST /v1/users"] = [Known("admin", body={"id": "fz-new", "role": "senior"})]
    return seeded


def _generated(operation, seeded: Seeded) -> st.SearchStrategy:
    """(role, case) pairs: schema-generated cases, half of them on seeded ids."""
    roles = st.sampled_from(operation.definition.raw.get("x-roles") or ["lead"])
    names = [p.name for p in operation.path_parameters]
    wholly = operation.as_strategy()
    strategies = [wholly]
    if names:
        paths = st.fixed_dictionaries({n: st.sampled_from(seeded.ids[n]) for n in names})
        strategies.append(paths.flatmap(lambda p: operation.as_strategy(path_parameters=p)))
        if operation.body or list(operation.query):
            strategies.append(
                paths.flatmap(
                    lambda p: operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=p)
                )
            )
    if "decision_id" in [p.name for p in operation.query]:
        strategies.append(
            st.tuples(
                st.fixed_dictionaries({"item_id": st.sampled_from(seeded.ids["item_id"])}),
                st.sampled_from(seeded.ids["decision_id"]),
            ).flatmap(
                lambda pd: operation.as_strategy(
                    path_parameters=pd[0], query={"decision_id": pd[1]}
                )
            )
        )
    return st.tuples(roles, st.one_of(strategies))


class Caller:
    """Sends cases with a role's token and tallies the answers."""

    def __init__(self, base_url: str, seeded: Seeded, tally: Tally, session) -> None:
        self.base_url, self.seeded, self.tally, self.session = base_url, seeded, tally, session

    def __call__(self, operation, role: str, case) -> None:
        headers = {"Authorization": f"Bearer {self.seeded.tokens[role]}"}
        response = case.call(
            base_url=self.base_url, session=self.session, headers=headers, timeout=30
        )
        self.tally.add(f"{operation.method.upper()} {operation.path}", response)


def _known(operation, seeded: Seeded, call: Caller) -> None:
    """Each known-good request of an operation, once."""
    for known in seeded.known.get(f"{operation.method.upper()} {operation.path}", []):
        case = operation.Case(
            path_parameters=known.path_parameters,
            query=known.query,
            **({} if known.body is None else {"body": known.body}),
            media_type="application/json" if known.body is not None else None,
        )
        call(operation, known.role, case)


def _fuzz(operation, seeded: Seeded, call: Caller) -> None:
    """``EXAMPLES_PER_OPERATION`` generated requests."""

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(drawn=_generated(operation, seeded))
    def check(drawn) -> None:
        call(operation, *drawn)

    check()


def test_openapi_fuzzing_on_a_seeded_gateway_finds_no_server_errors(
    gw_settings, kafka_bootstrap, topic_prefix
):
    tokens = _users(gw_settings.users_file)
    # one token per role sends every case: no per-token rate limit (test_gateway_rate_limit)
    unlimited = gw_settings.model_copy(update={"rate_limit": ""})
    with serve(unlimited) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        seeded = _seed(http, tokens, kafka_bootstrap, topic_prefix)
        schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
        tally = Tally()
        operations = [result.ok() for result in schema.get_all_operations()]
        with requests.Session() as session:
            call = Caller(base_url, seeded, tally, session)
            for operation in operations:  # the success paths first, while the leases are held
                _known(operation, seeded, call)
            for operation in operations:
                _fuzz(operation, seeded, call)

    statuses = tally.statuses
    total = sum(len(s) for s in statuses.values())
    past_404 = {label: sum(1 for s in got if s != 404) for label, got in statuses.items()}
    succeeded = {label: sum(1 for s in got if s < 300) for label, got in statuses.items()}
    print(  # the run's reach, for the log (pytest -s)
        f"\nfuzzed {len(statuses)} operations with {total} requests: "
        f"{sum(past_404.values())} got past 404, {sum(succeeded.values())} succeeded (2xx)"
    )
    for label in statuses:
        print(
            f"  {label}: {len(statuses[label])} requests, {past_404[label]} past 404, "
            f"{succeeded[label]} 2xx"
        )
    assert tally.failures == []
    assert len(statuses) >= 24
    # every operation was reached beyond "not found", and with a real id at least once succeeded
    assert all(past_404.values()), past_404
    assert all(succeeded.values()), succeeded
    assert any(s == 422 for got in statuses.values() for s in got)
