"""``/docs`` and ``/redoc`` say where the API is described (the CSP would block Swagger UI)."""

from __future__ import annotations

import httpx

from loupe.gateway.app import create_app
from loupe.gateway.settings import GatewaySettings


async def test_docs_point_at_the_openapi_schema_and_the_api_document(tmp_path) -> None:
    app = create_app(GatewaySettings(users_file=tmp_path / "users.json", start_consumer=False))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        for path in ("/docs", "/redoc"):
            response = await client.get(path)
            assert response.status_code == 404
            error = response.json()["error"]
            assert error["code"] == "docs_not_served"
            assert "/openapi.json" in error["message"]
            assert "docs/gateway-api.md" in error["message"]
            assert "content-security-policy" in response.headers
        schema = await client.get("/openapi.json")
        assert schema.status_code == 200
        assert "/docs" not in schema.json()["paths"]
