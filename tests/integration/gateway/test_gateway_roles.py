"""The role x project matrix over every route of the app.

Every route is listed in ``ENDPOINTS`` with the roles it admits and the project it touches (the
scope its ``RoleCheck`` declares); a route missing from the table fails the run. Each endpoint
refuses (403) exactly the roles it must, 401 without a valid token, and answers a caller outside
the project of the item, task, policy or listing it names exactly as if that did not exist (404).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness import samples
from harness.kafka import produce
from loupe.gateway.app import create_app
from loupe.gateway.logic import Role
from loupe.schemas.topics import LABELS_CONFLICTS, REVIEW_REQUESTS

WORKERS = frozenset({Role.ANNOTATOR, Role.REVIEWER, Role.SENIOR, Role.LEAD})
EVERYONE = frozenset(Role)
SENIORS = frozenset({Role.SENIOR, Role.LEAD})
LEADS = frozenset({Role.LEAD})
ADMINS = frozenset({Role.ADMIN})

HIDDEN = {"item_not_found", "task_not_found", "project_not_found"}
"""The codes a resource outside the caller's projects is answered with (as if it were missing)."""


def policy_body(project: str) -> dict[str, Any]:
    """A valid policy document for ``project``."""
    schema = {"id": "animals", "version": 1, "classes": ["cat", "dog"]}
    return {"policy": {"project": project, "label_schema": schema}}


@dataclass(frozen=True)
class Endpoint:
    """How to call one route, who may, and which project it touches."""

    path: str
    """The path with ``{item}``, ``{task}`` or ``{project}`` to fill in."""
    allowed: frozenset[Role] | None
    """None: an unauthenticated operations route."""
    scope: str = "none"
    body: Any = None
    headers: tuple[tuple[str, str], ...] = ()

    def request(self, item: str, project: str) -> dict[str, Any]:
        """Method-independent parts of a request on ``item`` (task ``req-<item>``) of
        ``project``."""
        fill = {"item": item, "task": f"req-{item}", "project": project}
        body = self.body(project) if callable(self.body) else self.body
        return {"path": self.path.format(**fill), "json": body, "headers": dict(self.headers)}


ENDPOINTS: dict[tuple[str, str], Endpoint] = {
    ("GET", "/healthz"): Endpoint("/healthz", None),
    ("GET", "/readyz"): Endpoint("/readyz", None),
    ("GET", "/metrics"): Endpoint("/metrics", None),
    ("GET", "/v1/me"): Endpoint("/v1/me", EVERYONE),
    ("POST", "/v1/tasks/claim"): Endpoint(
        "/v1/tasks/claim", WORKERS, "listing", lambda project: {"project": project}
    ),
    ("POST", "/v1/tasks/{task_id}/heartbeat"): Endpoint(
        "/v1/tasks/{task}/heartbeat", WORKERS, "task"
    ),
    ("POST", "/v1/tasks/{task_id}/release"): Endpoint("/v1/tasks/{task}/release", WORKERS, "task"),
    ("POST", "/v1/tasks/{task_id}/decision"): Endpoint(
        "/v1/tasks/{task}/decision",
        WORKERS,
        "task",
        {"action": "reject", "idempotency_key": "k"},
    ),
    ("POST", "/v1/tasks/{task_id}/reassign"): Endpoint(
        "/v1/tasks/{task}/reassign", LEADS, "task", {"reason": "x"}
    ),
    ("GET", "/v1/items/{item_id}"): Endpoint("/v1/items/{item}", WORKERS, "item"),
    ("GET", "/v1/items/{item_id}/comments"): Endpoint("/v1/items/{item}/comments", WORKERS, "item"),
    ("POST", "/v1/items/{item_id}/comments"): Endpoint(
        "/v1/items/{item}/comments", WORKERS, "item", {"text": "hi"}
    ),
    ("GET", "/v1/items/{item_id}/history"): Endpoint("/v1/items/{item}/history", SENIORS, "item"),
    ("GET", "/v1/items/{item_id}/diff"): Endpoint("/v1/items/{item}/diff", WORKERS, "item"),
    ("POST", "/v1/items/{item_id}/resolve"): Endpoint(
        "/v1/items/{item}/resolve",
        LEADS,
        "item",
        {"action": "reject"},
        (("Idempotency-Key", "final-1"),),
    ),
    ("GET", "/v1/conflicts"): Endpoint("/v1/conflicts?project={project}", LEADS, "listing"),
    ("GET", "/v1/policy/{project}"): Endpoint("/v1/policy/{project}", LEADS, "project"),
    ("PUT", "/v1/policy/{project}"): Endpoint(
        "/v1/policy/{project}", LEADS, "project", policy_body
    ),
    ("GET", "/v1/reviewers/quality"): Endpoint("/v1/reviewers/quality", LEADS, "listing"),
    ("GET", "/v1/users"): Endpoint("/v1/users", ADMINS),
    ("POST", "/v1/users"): Endpoint(
        "/v1/users", ADMINS, body={"id": "new-user", "role": "reviewer"}
    ),
    ("GET", "/v1/users/{user_id}"): Endpoint("/v1/users/someone", ADMINS),
    ("PATCH", "/v1/users/{user_id}"): Endpoint("/v1/users/someone", ADMINS, body={"name": "x"}),
    ("POST", "/v1/users/{user_id}/tokens"): Endpoint("/v1/users/someone/tokens", ADMINS),
    ("DELETE", "/v1/users/{user_id}/tokens"): Endpoint("/v1/users/someone/tokens", ADMINS),
    ("GET", "/v1/users/{user_id}/tokens"): Endpoint("/v1/users/someone/tokens", ADMINS),
    ("DELETE", "/v1/users/{user_id}/tokens/{token_id}"): Endpoint(
        "/v1/users/someone/tokens/t-1", ADMINS
    ),
}


def test_every_route_is_in_the_matrix_with_its_scope(gw_settings):
    """The app's OpenAPI document lists every route with the roles and the project scope its
    ``RoleCheck`` declares: a new route fails here until it is in ``ENDPOINTS``."""
    schema = create_app(gw_settings).openapi()
    operations = {
        (method.upper(), path): operation
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    }
    assert sorted(operations) == sorted(ENDPOINTS), (
        "a route is missing from (or extra in) ENDPOINTS"
    )
    for key, operation in operations.items():
        endpoint = ENDPOINTS[key]
        if endpoint.allowed is None:
            assert "x-roles" not in operation, key
            continue
        assert operation["x-roles"] == sorted(role.value for role in endpoint.allowed), key
        assert operation["x-project-scope"] == endpoint.scope, key


async def test_role_matrix(gateway):
    for role in Role:
        gateway.add_user(f"u-{role.value}", role)
    gateway.add_user("someone", Role.REVIEWER)
    failures = []
    for (method, _), endpoint in ENDPOINTS.items():
        if endpoint.allowed is None:
            continue
        request = endpoint.request("i-1", "demo")
        path = request["path"]
        anonymous = await gateway.call(method, **request)
        if anonymous.status_code != 401:
            failures.append(f"{method} {path} without token: {anonymous.status_code}")
        bad = {**request, "headers": {**request["headers"], "Authorization": "Bearer nope"}}
        response = await gateway.call(method, **bad)
        if response.status_code != 401:
            failures.append(f"{method} {path} with a bad token: {response.status_code}")
        for role in Role:
            response = await gateway.call(method, user=f"u-{role.value}", **request)
            if role in endpoint.allowed and response.status_code in (401, 403):
                failures.append(f"{method} {path} refused {role.value}: {response.text}")
            if role not in endpoint.allowed and response.status_code != 403:
                failures.append(f"{method} {path} let {role.value} in: {response.status_code}")
            if response.status_code >= 500:
                failures.append(f"{method} {path} as {role.value}: {response.status_code}")
            if response.status_code >= 400:
                assert set(response.json()) == {"error"}, response.text
    assert failures == []


async def _seed_two_projects(gateway, make_request, kafka_bootstrap, topic_prefix):
    """Items a-1 (project demo) and b-1, b-2 (project other), both projects' policies, a vote
    by bo (project other) and a conflict in project other."""
    gateway.add_user("root", Role.LEAD)  # no project list: every project
    gateway.add_user("bo", Role.REVIEWER, projects=["other"])
    requests = [
        make_request("a-1"),
        make_request("b-1", project="other"),
        make_request("b-2", project="other", priority=90),
    ]
    produce(
        kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}", [(r.item_id, r) for r in requests]
    )

    async def queued():
        return await gateway.queue_size("root", "reviewer") >= len(requests)

    await gateway.wait_for(queued, what="requests queued")
    for project in ("demo", "other"):
        put = await gateway.call("PUT", f"/v1/policy/{project}", "root", json=policy_body(project))
        assert put.status_code == 200, put.text
    claimed = await gateway.call("POST", "/v1/tasks/claim", "bo")
    assert claimed.json()["task"]["item_id"] == "b-2"
    voted = await gateway.call(
        "POST",
        "/v1/tasks/req-b-2/decision",
        "bo",
        json={"action": "reject", "idempotency_key": "bo-1"},
    )
    assert voted.status_code == 200, voted.text
    conflict = samples.conflict("b-2").model_copy(update={"project": "other"})
    produce(kafka_bootstrap, f"{topic_prefix}{LABELS_CONFLICTS.name}", [("b-2", conflict)])

    async def conflict_seen():
        body = (await gateway.call("GET", "/v1/conflicts", "root")).json()
        return body["conflicts"]

    await gateway.wait_for(conflict_seen, what="conflict stored")


async def test_role_by_project_matrix(gateway, make_request, kafka_bootstrap, topic_prefix):
    """Users of project demo reach demo's resources and see none of project other's."""
    await _seed_two_projects(gateway, make_request, kafka_bootstrap, topic_prefix)
    for role in Role:
        gateway.add_user(f"a-{role.value}", role, projects=["demo"])
    scoped = {k: e for k, e in ENDPOINTS.items() if e.scope != "none"}
    failures = []
    for (method, _), endpoint in scoped.items():
        assert endpoint.allowed is not None
        for role in sorted(endpoint.allowed):
            request = endpoint.request("b-1", "other")
            response = await gateway.call(method, user=f"a-{role.value}", **request)
            if request["path"] == "/v1/reviewers/quality":
                shown = [row["id"] for row in response.json()["reviewers"]]
                if "bo" in shown:
                    failures.append(f"{method} {request['path']} as {role.value} shows bo")
            elif response.status_code != 404 or response.json()["error"]["code"] not in HIDDEN:
                failures.append(
                    f"{method} {request['path']} as {role.value} (project demo) on project "
                    f"other: {response.status_code} {response.text[:200]}"
                )
    # nothing of project other changed
    item = (await gateway.call("GET", "/v1/items/b-1", "root")).json()
    assert item["tasks"][0]["status"] == "open" and item["resolved"] is None
    assert (await gateway.call("GET", "/v1/items/b-1/comments", "root")).json()["comments"] == []
    assert (await gateway.call("GET", "/v1/policy/other", "root")).json()["version"] == 1
    listed = (await gateway.call("GET", "/v1/conflicts", "a-lead")).json()["conflicts"]
    assert [c for c in listed if c["project"] == "other"] == []
    # and their own project's resources are theirs
    for (method, _), endpoint in scoped.items():
        assert endpoint.allowed is not None
        for role in sorted(endpoint.allowed):
            request = endpoint.request("a-1", "demo")
            response = await gateway.call(method, user=f"a-{role.value}", **request)
            refused = response.status_code in (401, 403) or (
                response.status_code == 404 and response.json()["error"]["code"] in HIDDEN
            )
            if refused or response.status_code >= 500:
                failures.append(
                    f"{method} {request['path']} as {role.value} on its own project: "
                    f"{response.status_code} {response.text[:200]}"
                )
    assert failures == []


async def test_a_task_is_never_reassigned_outside_its_project(
    gateway, make_request, kafka_bootstrap, topic_prefix
):
    await _seed_two_projects(gateway, make_request, kafka_bootstrap, topic_prefix)
    moved = await gateway.call(
        "POST", "/v1/tasks/req-a-1/reassign", "root", json={"to_user": "bo", "reason": "help"}
    )
    assert moved.status_code == 409, moved.text
    assert moved.json()["error"]["code"] == "not_eligible"


async def test_deactivated_user_and_revoked_token_are_refused(gateway):
    gateway.add_user("boss", Role.ADMIN)
    gateway.add_user("ann", Role.REVIEWER)
    assert (await gateway.call("GET", "/v1/me", "ann")).status_code == 200
    created = await gateway.call("POST", "/v1/users/ann/tokens", "boss", json={"name": "laptop"})
    assert created.status_code == 201
    second = {"Authorization": f"Bearer {created.json()['token']}"}
    assert (await gateway.client.get("/v1/me", headers=second)).status_code == 200
    revoked = await gateway.call("DELETE", "/v1/users/ann/tokens", "boss")
    assert revoked.json() == {"revoked": 2}
    assert (await gateway.client.get("/v1/me", headers=second)).status_code == 401
    assert (await gateway.call("GET", "/v1/me", "ann")).status_code == 401
    fresh = await gateway.call("POST", "/v1/users/ann/tokens", "boss")
    headers = {"Authorization": f"Bearer {fresh.json()['token']}"}
    assert (await gateway.client.get("/v1/me", headers=headers)).status_code == 200
    off = await gateway.call("PATCH", "/v1/users/ann", "boss", json={"active": False})
    assert off.status_code == 200 and off.json()["active"] is False
    assert (await gateway.client.get("/v1/me", headers=headers)).status_code == 401
    stored = gateway.users_file.read()["users"]["ann"]
    assert all(len(t["hash"]) == 64 for t in stored["tokens"].values())
    assert fresh.json()["token"] not in gateway.settings.users_file.read_text()


async def test_queue_sizes_count_only_the_callers_projects(
    gateway, make_request, kafka_bootstrap, topic_prefix
):
    """/v1/me's queue sizes are of the caller's projects: another project's backlog is none of
    their business (and its size tells them something about it)."""
    await _seed_two_projects(gateway, make_request, kafka_bootstrap, topic_prefix)
    gateway.add_user("ada", Role.REVIEWER, projects=["demo"])
    gateway.add_user("ben", Role.REVIEWER, projects=["other"])
    everyone = (await gateway.call("GET", "/v1/me", "root")).json()
    assert everyone["queues"]["reviewer"] == 2 and everyone["queues_complete"] is True  # a-1, b-1
    for user, expected in (("ada", 1), ("ben", 1)):
        me = (await gateway.call("GET", "/v1/me", user)).json()
        assert me["queues"] == {"annotator": 0, "reviewer": expected}, (user, me)
        assert me["queues_complete"] is True


async def test_another_projects_item_answers_exactly_like_an_unknown_one(
    gateway, make_request, kafka_bootstrap, topic_prefix
):
    """Same status, code and text (but for the id): nobody learns that b-1 exists."""
    await _seed_two_projects(gateway, make_request, kafka_bootstrap, topic_prefix)
    gateway.add_user("al", Role.LEAD, projects=["demo"])
    for path in ("/v1/items/{}", "/v1/items/{}/history", "/v1/items/{}/comments"):
        hidden = await gateway.call("GET", path.format("b-1"), "al")
        unknown = await gateway.call("GET", path.format("zz-9"), "al")
        assert hidden.status_code == unknown.status_code == 404, (hidden.text, unknown.text)
        assert hidden.text.replace("b-1", "zz-9") == unknown.text, path
