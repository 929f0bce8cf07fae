"""The role matrix: every endpoint refuses (403) exactly the roles it must, and 401 without auth."""

from __future__ import annotations

from loupe.gateway.logic import Role

WORKERS = {Role.ANNOTATOR, Role.REVIEWER, Role.SENIOR, Role.LEAD}
EVERYONE = set(Role)
SENIORS = {Role.SENIOR, Role.LEAD}
LEADS = {Role.LEAD}
ADMINS = {Role.ADMIN}

POLICY = {
    "policy": {
        "project": "demo",
        "label_schema": {"id": "animals", "version": 1, "classes": ["cat", "dog"]},
    }
}

MATRIX = [
    ("GET", "/v1/me", None, EVERYONE),
    ("POST", "/v1/tasks/claim", None, WORKERS),
    ("POST", "/v1/tasks/t-1/heartbeat", None, WORKERS),
    ("POST", "/v1/tasks/t-1/release", None, WORKERS),
    ("POST", "/v1/tasks/t-1/decision", {"action": "reject", "idempotency_key": "k"}, WORKERS),
    ("POST", "/v1/tasks/t-1/reassign", {"reason": "x"}, LEADS),
    ("GET", "/v1/items/i-1", None, WORKERS),
    ("GET", "/v1/items/i-1/comments", None, WORKERS),
    ("POST", "/v1/items/i-1/comments", {"text": "hi"}, WORKERS),
    ("GET", "/v1/items/i-1/history", None, SENIORS),
    ("GET", "/v1/items/i-1/diff", None, WORKERS),
    ("POST", "/v1/items/i-1/resolve", {"action": "reject"}, LEADS),
    ("GET", "/v1/conflicts", None, LEADS),
    ("GET", "/v1/policy/demo", None, LEADS),
    ("PUT", "/v1/policy/demo", POLICY, LEADS),
    ("GET", "/v1/reviewers/quality", None, LEADS),
    ("GET", "/v1/users", None, ADMINS),
    ("POST", "/v1/users", {"id": "new-user", "role": "reviewer"}, ADMINS),
    ("GET", "/v1/users/someone", None, ADMINS),
    ("PATCH", "/v1/users/someone", {"name": "x"}, ADMINS),
    ("POST", "/v1/users/someone/tokens", None, ADMINS),
    ("DELETE", "/v1/users/someone/tokens", None, ADMINS),
]


async def test_role_matrix(gateway):
    for role in Role:
        gateway.add_user(f"u-{role.value}", role)
    gateway.add_user("someone", Role.REVIEWER)
    failures = []
    for method, path, body, allowed in MATRIX:
        anonymous = await gateway.call(method, path, json=body)
        if anonymous.status_code != 401:
            failures.append(f"{method} {path} without token: {anonymous.status_code}")
        bad = await gateway.call(method, path, json=body, headers={"Authorization": "Bearer nope"})
        if bad.status_code != 401:
            failures.append(f"{method} {path} with a bad token: {bad.status_code}")
        for role in Role:
            response = await gateway.call(method, path, f"u-{role.value}", json=body)
            if role in allowed and response.status_code in (401, 403):
                failures.append(f"{method} {path} refused {role.value}: {response.text}")
            if role not in allowed and response.status_code != 403:
                failures.append(f"{method} {path} let {role.value} in: {response.status_code}")
            if response.status_code >= 500:
                failures.append(f"{method} {path} as {role.value}: {response.status_code}")
            if response.status_code >= 400:
                assert set(response.json()) == {"error"}, response.text
    assert failures == []


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
