"""The edge middleware: body limits (declared or streamed) answer 413 with the security headers."""

from __future__ import annotations

import httpx
import pytest
from fastapi.routing import APIRoute

from loupe.gateway.app import create_app
from loupe.gateway.security import content_security_policy
from loupe.gateway.settings import GatewaySettings

LIMIT = 1_024


@pytest.fixture
async def client(tmp_path):
    settings = GatewaySettings(
        users_file=tmp_path / "users.json", start_consumer=False, max_body_bytes=LIMIT
    )
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield http


def _assert_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert str(LIMIT) in response.json()["error"]["message"]
    assert response.headers["content-security-policy"] == content_security_policy(())
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_a_declared_oversized_body_is_refused_before_it_is_read(client) -> None:
    body = b'{"action": "approve", "comment": "' + b"x" * 2 * LIMIT + b'"}'
    _assert_too_large(await client.post("/v1/tasks/t-1/decision", content=body))


async def test_a_streamed_oversized_body_is_refused_too(client) -> None:
    async def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(4):
            yield b"x" * (LIMIT // 2)

    _assert_too_large(await client.post("/v1/tasks/t-1/decision", content=chunks()))


async def test_a_body_within_the_limit_passes_the_edge(client) -> None:
    response = await client.post("/v1/no-such-endpoint", content=b"x" * LIMIT)
    assert response.status_code == 405  # routed (the UI mount takes unknown paths), not a 413
    assert response.headers["content-security-policy"] == content_security_policy(())


async def test_an_unexpected_error_is_a_500_in_the_error_shape_with_the_headers(tmp_path) -> None:
    app = create_app(GatewaySettings(users_file=tmp_path / "users.json", start_consumer=False))

    async def broken() -> None:
        raise RuntimeError("secret detail that must not leak")

    app.router.routes.insert(0, APIRoute("/v1/broken", broken, methods=["GET"]))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        response = await http.get("/v1/broken")
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "internal_error", "message": "internal server error", "details": None}
    }
    assert "secret" not in response.text
    assert response.headers["content-security-policy"] == content_security_policy(())
    assert response.headers["x-content-type-options"] == "nosniff"
