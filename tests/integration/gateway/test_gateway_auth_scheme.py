"""``Authorization`` parsing on a real running gateway (uvicorn + httptools, real Kafka and Redis).

RFC 9110 §11.1: the auth scheme is case-insensitive, and whitespace separates it from the token.
Requests are written on a raw socket: HTTP client libraries refuse or normalise the odd header
values a hostile or sloppy client sends.
"""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

from loupe.gateway.logic import Role
from loupe.gateway.users import User, UsersFile

from .conftest import PEPPER, serve

SCHEMES = ("Bearer", "bearer", "BEARER", "BeArEr")
SEPARATORS = (" ", "   ", "\t", " \t ", "\t\t")
TRAILERS = ("", " ", "\t ")


def _get_me(base_url: str, authorization: str) -> tuple[int, dict]:
    """``GET /v1/me`` with this exact ``Authorization`` value; (status, JSON body)."""
    where = urlsplit(base_url)
    request = (
        "GET /v1/me HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n"
        f"Authorization: {authorization}\r\n\r\n"
    ).encode("latin-1")
    with socket.create_connection((where.hostname, where.port), timeout=30) as sock:
        sock.sendall(request)
        raw = b""
        while chunk := sock.recv(65_536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body else {}


def test_every_spelling_of_the_bearer_scheme_and_its_whitespace_is_accepted(gw_settings):
    users = UsersFile(gw_settings.users_file)
    users.add(User(id="ann", role=Role.REVIEWER, projects=["*"]))
    token = users.issue_token("ann", PEPPER)[0]
    refused = []
    # one token sends every spelling: no per-token rate limit (test_gateway_rate_limit)
    with serve(gw_settings.model_copy(update={"rate_limit": ""})) as base_url:
        for scheme in SCHEMES:
            for separator in SEPARATORS:
                for trailer in TRAILERS:
                    value = f"{scheme}{separator}{token}{trailer}"
                    status, body = _get_me(base_url, value)
                    if status != 200 or body.get("id") != "ann":
                        refused.append(f"{value.replace(token, '<token>')!r}: {status} {body}")
        # still refused: another scheme, no token, a token glued to the scheme, a bare token,
        # an unknown token in any spelling
        for value in (f"Basic {token}", "Bearer", "Bearer \t ", f"Bearer{token}", token):
            status, body = _get_me(base_url, value)
            assert status == 401, value.replace(token, "<token>")
            assert body["error"]["code"] == "unauthenticated"
        assert _get_me(base_url, "bEaReR\tnope")[0] == 401
    assert refused == []
