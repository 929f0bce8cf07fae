"""The benchmark's lean HTTP client against a real HTTP server (uvicorn) on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from loupe.bench.http_load import Connection, HttpError


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    """Echo the method, path, auth header and body; ``/empty`` answers 204, ``/stream`` chunks."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/empty":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["path"] == "/stream":  # no content-length: uvicorn sends it chunked
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})
        return
    auth = dict(scope["headers"]).get(b"authorization", b"-")
    answer = b"|".join([scope["method"].encode(), scope["path"].encode(), auth, body])
    headers = [(b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 201, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture
async def server_url() -> AsyncIterator[str]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(_app, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    for _ in range(200):  # bounded wait for start-up
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        listener.close()


async def test_requests_reuse_one_connection_and_read_exact_bodies(server_url: str) -> None:
    connection = await Connection.open(server_url)
    try:
        get = connection.head("GET", "/v1/me", {"authorization": "Bearer t1"}, 0)
        for _ in range(3):  # keep-alive: same connection, answers never run into each other
            assert await connection.send(get) == (201, b"GET|/v1/me|Bearer t1|")
        body = b'{"action":"approve"}'
        post = connection.head("POST", "/v1/tasks/x/decision", {}, len(body))
        assert await connection.send(post, body) == (201, b"POST|/v1/tasks/x/decision|-|" + body)
        assert await connection.send(connection.head("POST", "/empty", {}, 0)) == (204, b"")
    finally:
        await connection.close()


async def test_chunked_answers_are_refused_with_a_clear_error(server_url: str) -> None:
    connection = await Connection.open(server_url)
    try:
        with pytest.raises(HttpError, match="chunked"):
            await connection.send(connection.head("GET", "/stream", {}, 0))
    finally:
        await connection.close()


async def test_only_plain_http_urls_with_a_port() -> None:
    with pytest.raises(ValueError, match="http://host:port"):
        await Connection.open("https://127.0.0.1:443")
