"""The OpenAPI document shows bearer auth and the roles of every guarded operation."""

from __future__ import annotations

from loupe.gateway.app import create_app
from loupe.gateway.openapi import BEARER
from loupe.gateway.settings import GatewaySettings


def _schema(tmp_path) -> dict:
    app = create_app(GatewaySettings(users_file=tmp_path / "users.json", start_consumer=False))
    return app.openapi()


def test_every_api_operation_requires_a_bearer_token_and_lists_its_roles(tmp_path) -> None:
    schema = _schema(tmp_path)
    assert schema["components"]["securitySchemes"][BEARER] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token from `loupe users token <id>` (stored hashed).",
    }
    api = {
        (path, method): operation
        for path, operations in schema["paths"].items()
        if path.startswith("/v1/")
        for method, operation in operations.items()
    }
    assert len(api) >= 20
    for (path, method), operation in api.items():
        assert operation["security"] == [{BEARER: []}], (method, path)
        assert operation["x-roles"], (method, path)
        assert {"401", "403", "503"} <= set(operation["responses"]), (method, path)


def test_roles_match_the_endpoint_guards(tmp_path) -> None:
    paths = _schema(tmp_path)["paths"]
    claim = paths["/v1/tasks/claim"]["post"]["x-roles"]
    assert claim == ["annotator", "lead", "reviewer", "senior"]  # admins manage, never review
    assert paths["/v1/users"]["get"]["x-roles"] == ["admin"]
    assert "reviewer" not in paths["/v1/items/{item_id}/resolve"]["post"]["x-roles"]
    assert "lead" in paths["/v1/items/{item_id}/resolve"]["post"]["x-roles"]


def test_operations_endpoints_stay_public(tmp_path) -> None:
    paths = _schema(tmp_path)["paths"]
    assert "security" not in paths["/healthz"]["get"]
    assert "security" not in paths["/metrics"]["get"]
