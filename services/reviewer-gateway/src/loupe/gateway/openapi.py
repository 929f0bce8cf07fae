"""The gateway's OpenAPI document: bearer authentication and each operation's allowed roles."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from loupe.gateway.context import RoleCheck, Scope

BEARER = "bearerAuth"


def _role_check(route: APIRoute) -> RoleCheck | None:
    for dependency in route.dependant.dependencies:
        if isinstance(dependency.call, RoleCheck):
            return dependency.call
    return None


def document_security(schema: dict[str, Any], routes: list[Any]) -> dict[str, Any]:
    """Add the bearer scheme, and ``security``, ``x-roles``, ``x-project-scope``, 401, 403,
    (for a project-scoped operation) 404, 429 and 503 to guarded operations."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})[BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token from `loupe users token <id>` (stored hashed).",
    }
    for route in routes:
        check = _role_check(route) if isinstance(route, APIRoute) else None
        if check is None:
            continue
        roles = sorted(role.value for role in check.roles)
        for method in route.methods:
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:  # a route left out of the schema
                continue
            operation["security"] = [{BEARER: []}]
            operation["x-roles"] = roles
            operation["x-project-scope"] = check.scope.value
            responses = operation.setdefault("responses", {})
            responses.setdefault("401", {"description": "missing, unknown or revoked token"})
            responses.setdefault("403", {"description": f"allowed roles: {', '.join(roles)}"})
            if check.scope is not Scope.NONE:
                responses.setdefault(
                    "404", {"description": "not found, or outside the caller's projects"}
                )
            responses.setdefault(
                "429",
                {
                    "description": "rate_limited: the token is over its request rate "
                    "(LOUPE_GATEWAY_RATE_LIMIT; see Retry-After)"
                },
            )
            responses.setdefault(
                "503",
                {"description": "rebuilding: Redis is being rebuilt from Kafka (see Retry-After)"},
            )
    return schema


def install_openapi(app: FastAPI, routers: list[APIRouter]) -> None:
    """Serve the document built by ``document_security`` for ``routers`` (once, then cached)."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            routes = [route for router in routers for route in router.routes]
            app.openapi_schema = document_security(schema, routes)
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]
