"""Failed authentication and authorization are logged with the client's address (never the token)
and counted in ``loupe_gateway_auth_failures_total{kind, reason}`` (issue 13, point 6)."""

from __future__ import annotations

import logging
from datetime import timedelta

from prometheus_client import REGISTRY

from loupe.gateway.logic import Role
from loupe.runtime.logs import process_repeat_limiter
from loupe.schemas import utcnow

from .conftest import PEPPER

CLIENT = "127.0.0.1"  # what httpx's ASGI transport reports as the peer


def _count(kind: str, reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "loupe_gateway_auth_failures_total", {"kind": kind, "reason": reason}
    )
    return value or 0.0


async def test_refusals_are_logged_with_the_address_and_counted_by_reason(gateway, caplog):
    gateway.add_user("ann", Role.REVIEWER)
    gateway.add_user("boss", Role.ADMIN)
    expired, _, _ = gateway.users_file.issue_token(
        "ann", PEPPER, expires_at=utcnow() - timedelta(seconds=1)
    )
    revoked, revoked_id, _ = gateway.users_file.issue_token("ann", PEPPER)
    gateway.add_user("cid", Role.REVIEWER)  # reloads the users file into Redis
    gone = await gateway.call("DELETE", f"/v1/users/ann/tokens/{revoked_id}", "boss")
    assert gone.status_code == 200, gone.text

    cases = [
        ({}, "authentication", "missing_token"),
        ({"Authorization": "Basic YW5uOnB3"}, "authentication", "malformed_header"),
        ({"Authorization": "Bearer lp_made-up-secret"}, "authentication", "unknown_token"),
        ({"Authorization": f"Bearer {expired}"}, "authentication", "expired_token"),
        ({"Authorization": f"Bearer {revoked}"}, "authentication", "revoked_token"),
        (gateway.auth("ann"), "authorization", "role"),
    ]
    for headers, kind, reason in cases:
        # earlier tests of this process may have used up the repeat limiter's burst for the
        # same line (an unknown-token spray): each case starts from a fresh one
        process_repeat_limiter().reset()
        before = _count(kind, reason)
        with caplog.at_level(logging.WARNING, logger="loupe.gateway"):
            caplog.clear()
            response = await gateway.client.get("/v1/users", headers=headers)
        assert response.status_code == (401 if kind == "authentication" else 403), reason
        assert _count(kind, reason) == before + 1, reason
        lines = [r.getMessage() for r in caplog.records if r.name.startswith("loupe.gateway")]
        assert len(lines) == 1, (reason, lines)
        assert CLIENT in lines[0] and reason in lines[0] and "/v1/users" in lines[0], lines
        for secret in ("lp_made-up-secret", expired, revoked, gateway.tokens["ann"], "YW5uOnB3"):
            assert secret not in lines[0], lines

    off = await gateway.call("PATCH", "/v1/users/cid", "boss", json={"active": False})
    assert off.status_code == 200, off.text
    before = _count("authentication", "inactive_user")
    assert (await gateway.call("GET", "/v1/me", "cid")).status_code == 401
    assert _count("authentication", "inactive_user") == before + 1
