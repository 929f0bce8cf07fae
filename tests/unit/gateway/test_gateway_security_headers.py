"""Every gateway response carries the security headers the UI relies on; item media may come
only from the origins the projects' policies list (``review.media_origins``)."""

from __future__ import annotations

import httpx

from loupe.gateway.app import create_app
from loupe.gateway.security import SecurityHeaders, content_security_policy
from loupe.gateway.settings import GatewaySettings

NO_ORIGINS = content_security_policy(())


def _directives(csp: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in csp.split("; ")}


def test_without_listed_origins_media_come_only_from_the_gateway_and_data_uris() -> None:
    directives = _directives(NO_ORIGINS)
    assert directives["img-src"] == ["'self'", "data:"]
    assert directives["media-src"] == ["'self'", "data:"]
    assert directives["default-src"] == ["'self'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert "https:" not in NO_ORIGINS.split() and "http:" not in NO_ORIGINS.split()


def test_listed_origins_are_the_only_other_media_sources() -> None:
    origins = ["https://media.example.com", "http://127.0.0.1:9000"]
    directives = _directives(content_security_policy(origins))
    assert directives["img-src"] == ["'self'", "data:", *origins]
    assert directives["media-src"] == ["'self'", "data:", *origins]
    assert directives["script-src"] == ["'self'"]
    assert directives["connect-src"] == ["'self'"]


async def test_ui_and_api_responses_carry_security_headers(tmp_path) -> None:
    app = create_app(GatewaySettings(users_file=tmp_path / "users.json", start_consumer=False))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        for path in ("/", "/styles.css", "/v1/no-such-endpoint"):
            response = await client.get(path)
            assert response.headers["content-security-policy"] == NO_ORIGINS
            assert "'unsafe-inline'" not in response.headers["content-security-policy"]
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "no-referrer"
            assert response.headers["x-frame-options"] == "DENY"
        assert (await client.get("/")).status_code == 200
        assert (await client.get("/v1/no-such-endpoint")).status_code == 404


async def test_responses_follow_the_origins_last_loaded_without_asking_redis(tmp_path) -> None:
    # no lifespan runs here and no Redis is configured: the header comes from memory
    app = create_app(GatewaySettings(users_file=tmp_path / "users.json", start_consumer=False))
    headers: SecurityHeaders = app.state.security_headers
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        headers.update(["https://media.example.com"])
        csp = (await client.get("/")).headers["content-security-policy"]
        assert _directives(csp)["img-src"] == ["'self'", "data:", "https://media.example.com"]
        headers.update([])
        assert (await client.get("/")).headers["content-security-policy"] == NO_ORIGINS


def test_the_union_is_sorted_deduplicated_and_capped() -> None:
    headers = SecurityHeaders(max_origins=2)
    headers.update(["https://c.example", "https://a.example", "https://a.example", "https://b.x"])
    assert headers.origins == ("https://a.example", "https://b.x")
    csp = dict(headers.headers)[b"content-security-policy"].decode()
    assert "https://c.example" not in csp
