"""A lean keep-alive HTTP/1.1 client for load generation on loopback.

General clients (httpx, aiohttp) spend several hundred microseconds of Python per request, so on a
small machine the load generator, not the server, sets the pace. This one sends pre-encoded
request heads over asyncio streams and reads ``Content-Length`` framed answers — all a FastAPI
server on uvicorn sends for JSON — which keeps the client's share of the CPU small.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

_HEAD_END = b"\r\n\r\n"
_MAX_HEAD = 64 * 1024
DEFAULT_TIMEOUT_S = 10.0
"""How long a connect or a request may take before it counts as failed."""


class HttpError(RuntimeError):
    """The server answered something this client does not speak (or closed the connection)."""


class Connection:
    """One persistent connection; requests on it are sent one after another."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        host: str,
        timeout_s: float,
    ):
        self._reader = reader
        self._writer = writer
        self._host = host.encode()
        self.timeout_s = timeout_s

    @classmethod
    async def open(cls, base_url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Connection:
        """Connect to ``http://host:port`` (plain HTTP only: this is for loopback benchmarks);
        every request on the connection must be answered within ``timeout_s``."""
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"expected http://host:port, got {base_url!r}")
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(
                parts.hostname, parts.port, limit=_MAX_HEAD
            )
        return cls(reader, writer, parts.netloc, timeout_s)

    def head(self, method: str, path: str, headers: dict[str, str], body_length: int) -> bytes:
        """The encoded request line and headers, to be reused across requests."""
        lines = [f"{method} {path} HTTP/1.1", f"host: {self._host.decode()}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"content-length: {body_length}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def send(self, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
        """Send one request (a ``head()`` plus its body); the answer's status and body. A
        request not answered within the connection's timeout raises ``HttpError`` (the
        connection is then unusable: open a new one)."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._exchange(head, body)
        except TimeoutError:
            raise HttpError(f"no answer within {self.timeout_s} s") from None

    async def _exchange(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        self._writer.write(head + body if body else head)
        try:
            raw = await self._reader.readuntil(_HEAD_END)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise HttpError(f"no complete response head: {exc}") from None
        status_line, _, header_block = raw.partition(b"\r\n")
        try:
            status = int(status_line.split(b" ", 2)[1])
        except (IndexError, ValueError):
            raise HttpError(f"bad status line {status_line[:80]!r}") from None
        length = 0
        for line in header_block.split(b"\r\n"):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                if not value.strip().isdigit():
                    raise HttpError(f"bad content-length {value[:20]!r}")
                length = int(value)
            elif name == b"transfer-encoding":
                raise HttpError("chunked responses are not supported by this load client")
        try:
            body_out = await self._reader.readexactly(length) if length else b""
        except asyncio.IncompleteReadError as exc:
            raise HttpError(f"connection closed {len(exc.partial)} of {length} bytes in") from None
        return status, body_out

    async def close(self) -> None:
        """Close the connection."""
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()
