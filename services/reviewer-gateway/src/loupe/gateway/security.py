"""Security headers on every response: the UI runs under a strict Content-Security-Policy.

Item media (images, video) may load from the gateway itself, inline ``data:`` URIs and the
origins the projects' policies list in ``review.media_origins`` (validated by ``loupe.schemas``
as ``https://host[:port]``, or ``http://`` on loopback), not from any host. Those origins live in
Redis (``<prefix>media-origins``, written with each policy); the app reads their union every
``media_origins_refresh_s`` into a ``SecurityHeaders``, so a response costs no Redis call.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)


def content_security_policy(media_origins: Iterable[str]) -> str:
    """No inline scripts or styles, no plugins, no framing; media from ``'self'``, ``data:``
    and ``media_origins`` only."""
    media = " ".join(("'self'", "data:", *media_origins))
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {media}",
            f"media-src {media}",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def security_headers(media_origins: Iterable[str]) -> tuple[tuple[bytes, bytes], ...]:
    """The raw headers every answer carries (unless the app set one of them itself)."""
    return (
        (b"content-security-policy", content_security_policy(media_origins).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
        (b"cross-origin-opener-policy", b"same-origin"),
    )


class SecurityHeaders:
    """The current security headers, rebuilt only when the projects' media origins change.

    The union is sorted (the header is the same on every replica that saw the same policies)
    and capped at ``max_origins``: a header grows with every origin, and proxies refuse
    response headers beyond a few KiB. Origins past the cap are left out (their media are
    blocked and the UI says so) and logged.
    """

    def __init__(self, max_origins: int = 128) -> None:
        self.max_origins = max_origins
        self.listed: tuple[str, ...] = ()
        """Every origin the projects list (``origins`` is the share the header allows)."""
        self.origins: tuple[str, ...] = ()
        self.headers = security_headers(())

    def update(self, origins: Iterable[str]) -> None:
        """Allow media from exactly these origins (the union of the projects' lists)."""
        listed = tuple(sorted(set(origins)))
        if listed == self.listed:
            return
        self.listed = listed
        if len(listed) > self.max_origins:
            log.warning(
                "%d media origins listed by the projects' policies; the CSP allows the first %d "
                "(LOUPE_GATEWAY_CSP_MAX_MEDIA_ORIGINS), media from the others are blocked: %s",
                len(listed),
                self.max_origins,
                " ".join(listed[self.max_origins :]),
            )
        self.origins = listed[: self.max_origins]
        self.headers = security_headers(self.origins)
