"""The UI's pure modules (geometry, track edits, shortcuts, policy parsing, media rules), run in
the real browser. They need no gateway: the UI folder is served by a plain static file server."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from loupe.gateway.app import ui_directory
from loupe.gateway.settings import GatewaySettings


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Keep test output clean."""


@pytest.fixture(scope="module")
def page(browser: Browser) -> Iterator[Page]:
    """A page on the UI's static files (loopback, free port), shared by this module's tests."""
    folder = ui_directory(GatewaySettings())
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
    yield page
    context.close()
    server.shutdown()
    assert not errors, errors


def run(page: Page, module: str, body: str):
    """Import a UI module in the page and evaluate `body` with it bound to `m`."""
    return page.evaluate(f"import('/js/{module}.js').then((m) => {{ {body} }})")


def test_resize_and_move_stay_inside_the_image(page):
    image = "{width: 100, height: 80}"
    out = run(
        page,
        "geometry",
        f"""
      const box = {{label: 'cat', x: 10, y: 10, w: 20, h: 20}};
      return [m.resizeBox(box, 'nw', -50, -50, {image}), m.resizeBox(box, 'se', 500, 500, {image}),
              m.resizeBox(box, 'ne', -100, 0, {image}), m.moveBox(box, 1000, -1000, {image}),
              m.rectFromDrag(5, 5, 6, 6, {image}), m.rectFromDrag(90, 70, 10, 10, {image})];""",
    )
    nw, se, shrunk, moved, tiny, dragged = out
    assert (nw["x"], nw["y"], nw["w"], nw["h"]) == (0, 0, 30, 30)
    assert (se["x"], se["y"], se["w"], se["h"]) == (10, 10, 90, 70)
    assert shrunk["w"] == 4  # never below the minimum size
    assert (moved["x"], moved["y"]) == (80, 0)
    assert tiny is None
    assert dragged == {"x": 10, "y": 10, "w": 80, "h": 60}


def test_normalised_boxes_round_trip_inside_bounds(page):
    out = run(
        page,
        "geometry",
        """
      const image = {width: 333, height: 77};
      const box = {label: 'a', x: 0.3, y: 0.5, w: 0.7, h: 0.5};
      const px = m.toPixels(box, image, 'normalized');
      return m.fromPixels(px, image, 'normalized');""",
    )
    assert out["x"] + out["w"] <= 1.0 and out["y"] + out["h"] <= 1.0
    assert abs(out["x"] - 0.3) < 1e-6 and abs(out["w"] - 0.7) < 1e-6


def test_identity_switch_swaps_ids_from_the_frame_on(page):
    out = run(
        page,
        "trackmath",
        """
      const f = (n, a, b) => ({
        frame: n, boxes: [{track_id: a, label: 'cat'}, {track_id: b, label: 'dog'}]});
      const frames = [f(0, 't1', 't2'), f(1, 't1', 't2'), f(2, 't2', 't1')];
      return [m.switchIdentity(frames, 2, 't2', 't1'), m.freshTrackId(frames),
              m.trackIds(frames)];""",
    )
    switched, fresh, ids = out
    assert [[b["track_id"] for b in f["boxes"]] for f in switched] == [["t1", "t2"]] * 3
    assert fresh == "t3"
    assert ids == ["t1", "t2"]


def test_correcting_a_track_box_keeps_the_frame_order(page):
    out = run(
        page,
        "trackmath",
        """
      const frames = [{frame: 4, boxes: [{track_id: 'a', x: 1}, {track_id: 'b', x: 2}]}];
      return [m.setTrackBox(frames, 4, 'a', {x: 9}), m.setTrackBox(frames, 4, 'c', {x: 3}),
              m.removeTrackBox(frames, 4, 'a'), frames];""",
    )
    replaced, added, removed, original = out
    assert replaced[0]["boxes"] == [{"track_id": "a", "x": 9}, {"track_id": "b", "x": 2}]
    assert [b["track_id"] for b in added[0]["boxes"]] == ["a", "b", "c"]
    assert removed[0]["boxes"] == [{"track_id": "b", "x": 2}]
    assert original[0]["boxes"][0]["x"] == 1  # pure: the input is not modified


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("3", {"type": "class", "index": 2}),
        ("A", {"type": "action", "action": "approve"}),
        ("r", {"type": "action", "action": "reject"}),
        ("s", {"type": "action", "action": "skip"}),
        ("e", {"type": "action", "action": "escalate"}),
        ("Enter", {"type": "submit"}),
        ("?", {"type": "help"}),
        ("0", None),
    ],
)
def test_shortcuts(page, key, expected):
    got = run(page, "keys", f"return m.commandFor({{key: {key!r}, target: document.body}});")
    assert got == expected


def test_shortcuts_are_off_while_typing_a_comment(page):
    got = run(
        page,
        "keys",
        """
      const area = document.createElement('textarea');
      return m.commandFor({key: 'a', target: area});""",
    )
    assert got is None


def test_arrows_on_the_frame_slider_are_left_to_the_slider(page):
    got = run(
        page,
        "keys",
        """
      const slider = document.createElement('input');
      slider.type = 'range';
      return [m.commandFor({key: 'ArrowRight', target: slider}),
              m.commandFor({key: 'Enter', target: slider})];""",
    )
    assert got == [None, {"type": "submit"}]


def test_policy_fields_accept_scores_only(page):
    out = run(
        page,
        "policy",
        """
      const p = (t, nullable) => {
        try { return m.parseScore(t, 'x', nullable); } catch (e) { return e.message; }
      };
      return [p('0.3'), p(''), p('', true), p('1.2'), p('abc'), p('NaN')];""",
    )
    assert out == [0.3, "x is required", None] + ["x must be a number from 0 to 1"] * 3


def test_media_addresses(page):
    out = run(
        page,
        "media",
        """
      return [m.mediaUrl('javascript:alert(1)'), m.mediaUrl('data:text/html,<b>x</b>'),
              m.mediaUrl('data:image/png;base64,AAAA'), m.mediaUrl('/media/a.png'),
              m.mediaUrl('//evil.example/a.png'),
              m.mediaUrl('https://cdn.example/f{frame:4}.jpg', 7)];""",
    )
    assert out == [
        None,
        None,
        "data:image/png;base64,AAAA",
        "/media/a.png",
        None,
        "https://cdn.example/f0007.jpg",
    ]


def test_which_503s_are_retried_and_how_long_the_ui_waits(page):
    retried, low, high, total = run(
        page,
        "api",
        """
      const rebuilding = {error: {code: 'rebuilding'}};
      const kafka = {error: {code: 'kafka_unavailable'}};
      const delays = (pick) => [m.retryDelay(0, null, pick), m.retryDelay(0, '1', pick),
        m.retryDelay(3, '1', pick), m.retryDelay(9, null, pick), m.retryDelay(0, '3600', pick),
        m.retryDelay(1, 'soon', pick)];
      return [[m.retryable('POST', 503, rebuilding), m.retryable('GET', 503, kafka),
               m.retryable('POST', 503, kafka), m.retryable('GET', 401, null),
               m.retryable('GET', 500, null), m.retryable('PUT', 503, '<html>')],
              delays(() => 0), delays(() => 0.999999),
              m.RETRY_DELAYS_MS.reduce((a, _, n) => a + m.retryDelay(n, '1', () => 0.999), 0)];""",
    )
    # rebuilding: nothing happened, any method; other 503s only for reads; never 401 or 500
    assert retried == [True, True, False, False, False, False]
    # full jitter over the backoff, on top of Retry-After, capped; all retries within a minute
    assert low == [0, 1000, 1000, 0, 8000, 0]
    assert high == [500, 1500, 5000, 8000, 8000, 1000]
    assert total <= 60_000


def test_the_backoff_is_jittered(page):
    """Tabs that got the same 503 do not come back in lockstep."""
    delays = run(page, "api", "return Array.from({length: 50}, () => m.retryDelay(2, '1'));")
    assert all(1000 <= d <= 3000 for d in delays)
    assert len(set(delays)) > 25


# A fake gateway inside the page: `fetch` answers 503 rebuilding (or fails like a refused
# connection) while `down` lasts, and counts the requests in flight when each one starts.
FAKE_GATEWAY = """
  const stats = {sent: 0, maxInFlightWhileDown: 0, inFlight: 0, firstAnswered: false};
  const real = window.fetch;
  window.__restoreFetch = () => { window.fetch = real; };
  window.fetch = async (path, init) => {
    stats.sent += 1;
    const down = fake.down(stats, path, init);
    if (down && stats.firstAnswered)
      stats.maxInFlightWhileDown = Math.max(stats.maxInFlightWhileDown, stats.inFlight + 1);
    stats.inFlight += 1;
    try {
      await new Promise((r) => setTimeout(r, 30));
      if (down === 'refused') throw new TypeError('Failed to fetch');
      if (down) return new Response(JSON.stringify({error: {code: 'rebuilding',
        message: 'rebuilding', details: null}}), {status: 503,
        headers: {'Content-Type': 'application/json', ...(fake.retryAfter ?
          {'Retry-After': fake.retryAfter} : {})}});
      return new Response(JSON.stringify({id: 'ann'}), {status: 200,
        headers: {'Content-Type': 'application/json'}});
    } finally {
      stats.inFlight -= 1;
      stats.firstAnswered = true;
    }
  };
"""


def test_retries_are_single_flight_one_chain_per_tab(page):
    """Five requests during a long 503 period: after the first answers, at most one request is
    on the wire at a time (the others wait at the one backoff gate, not in chains of their own:
    a refresh tick then is skipped by app.js, see ``backingOff``)."""
    stats, results = run(
        page,
        "api",
        "let fake = {down: (stats) => stats.sent <= 9 ? 'down' : null};"
        + FAKE_GATEWAY
        + """
      const calls = Array.from({length: 5}, () => m.request('GET', '/v1/me'));
      return Promise.all(calls).then((done) => [stats, done.map((d) => d.id)])
        .finally(() => window.__restoreFetch());""",
    )
    assert results == ["ann"] * 5
    assert stats["maxInFlightWhileDown"] <= 1, stats


def test_a_get_that_cannot_reach_the_gateway_is_retried_like_a_503(page):
    got, posted, sent = run(
        page,
        "api",
        "let fake = {down: (stats, path, init) => "
        + "init.method === 'POST' || stats.sent <= 2 ? 'refused' : null};"
        + FAKE_GATEWAY
        + """
      return m.request('GET', '/v1/me').then(async (me) => {
        const posted = await m.request('POST', '/v1/tasks/claim', {}).then(
          () => 'sent', (err) => err.status);
        window.__restoreFetch();
        return [me.id, posted, stats.sent];
      });""",
    )
    assert got == "ann"  # two refused connections, then the gateway is back
    assert posted == 0  # a POST is not sent again: it may have reached the gateway
    assert sent == 4


def test_a_heartbeat_is_not_retried_beyond_the_lease(page):
    """The lease ends in 0.3 s and the gateway asks to come back in 1 s: one attempt, then the
    error (a later heartbeat would be for a lease that is gone)."""
    outcome, sent = run(
        page,
        "api",
        "let fake = {down: () => 'down', retryAfter: '1'};"
        + FAKE_GATEWAY
        + """
      const beat = m.api.heartbeat('t-1', Date.now() + 300).then(() => 'renewed', (e) => e.status);
      const bound = new Promise((r) => setTimeout(() => r('still retrying'), 5000));
      return Promise.race([beat, bound]).then((outcome) => {
        window.__restoreFetch();
        return [outcome, stats.sent];
      });""",
    )
    assert outcome == 503
    assert sent == 1


def test_ui_source_has_no_html_sinks():
    """Data reaches the DOM only as text: no HTML-parsing or code-evaluating sinks in the UI."""
    folder = ui_directory(GatewaySettings())
    sinks = [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        'setTimeout("',
        "javascript:",
    ]
    sources = sorted(folder.glob("js/*.js"))
    assert len(sources) >= 10
    for source in sources:
        text = source.read_text()
        code = "\n".join(line for line in text.splitlines() if not line.strip().startswith("//"))
        for sink in sinks:
            assert sink not in code, f"{source.name} uses {sink}"
    page = (folder / "index.html").read_text()
    assert "http://" not in page and "https://" not in page  # nothing loaded from elsewhere
