"""Item media under the CSP: an image from an origin the project's policy lists loads; one from
an origin it does not list is refused by the browser, and the UI says why."""

from __future__ import annotations

import base64
import contextlib
import http.server
import re
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from loupe.stack import free_port


class MediaServer:
    """A loopback image host that records the paths asked of it."""

    def __init__(self, png: bytes) -> None:
        self.png = png
        self.requests: list[str] = []
        self.origin = ""

    @contextlib.contextmanager
    def running(self) -> Iterator[MediaServer]:
        requests, png = self.requests, self.png

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(png)))
                self.end_headers()
                self.wfile.write(png)

            def log_message(self, *args: Any) -> None:
                pass

        port = free_port()
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.origin = f"http://127.0.0.1:{port}"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


@pytest.fixture
def gateway(gateway_factory):
    """The gateway, reading the projects' media origins every 0.2 s."""
    return gateway_factory(media_origins_refresh_s="0.2")


def _img_src(url: str) -> list[str]:
    with urllib.request.urlopen(url + "/", timeout=5) as response:
        csp = response.headers["Content-Security-Policy"]
    return next(d.split()[1:] for d in csp.split("; ") if d.startswith("img-src "))


def test_media_load_only_from_listed_origins_and_the_ui_says_why(ui, gateway, seed):
    png = base64.b64decode(seed.png(320, 240).split(",", 1)[1])
    with MediaServer(png).running() as listed, MediaServer(png).running() as unlisted:
        seed.policy(media_origins=[listed.origin])
        gateway.wait_until(
            lambda: _img_src(gateway.url) == ["'self'", "data:", listed.origin],
            "the listed origin in the CSP",
        )
        seed.publish(seed.image_item("img-listed", f"{listed.origin}/cat.png"))
        seed.publish(seed.image_item("img-unlisted", f"{unlisted.origin}/fox.png"))
        gateway.wait_for_queue("ann", 2)

        ui.sign_in("ann")
        page = ui.page
        csp_reports: list[str] = []
        page.on(
            "console",
            lambda m: csp_reports.append(m.text) if "Content Security Policy" in m.text else None,
        )
        seen = []
        for _ in range(2):
            if seen:
                expect(page.locator("#item-id")).not_to_have_text(seen[-1])
            item = page.locator("#item-id").inner_text()
            seen.append(item)
            if item == "img-listed":
                expect(page.locator("img.item-image")).to_be_visible()
                page.wait_for_function(
                    "() => document.querySelector('img.item-image')?.naturalWidth === 320"
                )
                expect(page.locator("#media-blocked")).to_have_count(0)
                ui.screenshot("30-media-listed-origin")
            else:
                notice = page.locator("#media-blocked")
                expect(notice).to_have_text(
                    "Media not shown: origin not listed in the project's settings "
                    f"({unlisted.origin})."
                )
                expect(page.locator("img.item-image")).to_have_count(0)
                ui.screenshot("31-media-unlisted-origin")
            page.keyboard.press("s")
            page.keyboard.press("Enter")
        expect(page.locator("#no-task")).to_be_visible()

    assert sorted(seen) == ["img-listed", "img-unlisted"]
    assert listed.requests == ["/cat.png"]
    assert unlisted.requests == []  # the browser never asked: the CSP refused it
    assert any(re.search(re.escape(unlisted.origin) + "/fox.png", r) for r in csp_reports)
