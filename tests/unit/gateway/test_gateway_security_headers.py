"""Every gateway response carries the security headers the UI relies on."""

from __future__ import annotations

import httpx

from loupe.gateway.app import create_app
from loupe.gateway.security import CONTENT_SECURITY_POLICY
from loupe.gateway.settings import GatewaySettings


async def test_ui_and_api_responses_carry_security_headers(tmp_path) -> None:
    app = create_app(GatewaySettings(users_file=tmp_path / "users.json", start_consumer=False))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        for path in ("/", "/styles.css", "/v1/no-such-endpoint"):
            response = await client.get(path)
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert "'unsafe-inline'" not in response.headers["content-security-policy"]
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "no-referrer"
            assert response.headers["x-frame-options"] == "DENY"
        assert (await client.get("/")).status_code == 200
        assert (await client.get("/v1/no-such-endpoint")).status_code == 404
