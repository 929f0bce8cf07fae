"""Schemathesis against the live OpenAPI schema (real Kafka and Redis): no input gives a 5xx."""

from __future__ import annotations

import threading
import time

import httpx
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings

from loupe.gateway.app import create_app
from loupe.gateway.logic import Role
from loupe.gateway.users import User, UsersFile
from loupe.stack import free_port

EXAMPLES_PER_OPERATION = 15


def _fuzz(
    operation, base_url: str, headers: dict[str, str], failures: list[str], calls: list[int]
) -> None:
    label = operation.label

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(case=operation.as_strategy())
    def check(case):
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        calls.append(response.status_code)
        if response.status_code >= 500:
            failures.append(f"{label}: {response.status_code} {response.text[:200]}")
        if response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
            body = response.json()
            if set(body) != {"error"}:
                failures.append(f"{label}: error body {body}")

    check()


def test_openapi_fuzzing_finds_no_server_errors(gw_settings):
    users = UsersFile(gw_settings.users_file)
    tokens = {}
    for role in (Role.LEAD, Role.ADMIN):
        users.add(User(id=f"fuzz-{role.value}", role=role))
        tokens[role] = users.issue_token(f"fuzz-{role.value}", "test-pepper")[0]
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(gw_settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"{base_url}/healthz", timeout=2)
                if health.status_code == 200 and not health.json()["rebuilding"]:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
        failures: list[str] = []
        calls: list[int] = []
        operations = 0
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            # admins reach the user endpoints, leads everything else
            role = Role.ADMIN if operation.path.startswith("/v1/users") else Role.LEAD
            headers = {"Authorization": f"Bearer {tokens[role]}"}

            _fuzz(operation, base_url, headers, failures, calls)
        assert operations >= 20
        assert len(calls) >= 3 * operations
        assert any(status < 300 for status in calls) and any(status == 422 for status in calls)
        assert failures == []
    finally:
        server.should_exit = True
        thread.join(timeout=30)
