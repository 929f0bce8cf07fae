"""E2E fixtures: the real reviewer gateway (uvicorn, free loopback port) on the session's real
Kafka and Redis, seeded users with tokens, review tasks published to Kafka, and a real headless
Chromium driven by Playwright."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from harness.infra import Infra
from harness.kafka import produce
from loupe.gateway.users import User, UsersFile
from loupe.schemas import Event
from loupe.schemas.topics import TopicSpec
from loupe.stack import free_port

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("LOUPE_E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PEPPER = "e2e-pepper"
APP = "loupe.gateway.app:create_app"

# id, display name, role, tier
PEOPLE = [
    ("ann", "Ann Reviewer", "reviewer", "reviewer"),
    ("sam", "Sam Senior", "senior", "senior"),
    ("lee", "Lee Lead", "lead", "lead"),
]


class HttpError(Exception):
    """A non-2xx answer from the gateway."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


@dataclass
class Gateway:
    """A running gateway: where it listens, who may sign in, and where its topics live."""

    url: str
    bootstrap: str
    prefix: str
    tokens: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def topic(self, spec: TopicSpec) -> str:
        """Full name of a registry topic for this gateway."""
        return spec.full_name(self.prefix)

    def publish(self, topic: TopicSpec, events: list[tuple[str, Event]]) -> None:
        """Publish events (key, event) to a registry topic, as the other services would."""
        produce(self.bootstrap, self.topic(topic), events)

    def call(self, method: str, path: str, user: str, body: Any = None) -> Any:
        """Call the API as `user`; returns parsed JSON (None for 204)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.tokens[user]}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # loopback only
                raw = response.read()
                return json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            raise HttpError(err.code, err.read().decode(errors="replace")) from err

    def item(self, item_id: str, user: str) -> Any:
        """``GET /v1/items/{id}`` as `user`, or None while the gateway does not know the item."""
        try:
            return self.call("GET", f"/v1/items/{item_id}", user)
        except HttpError as err:
            if err.status == 404:
                return None
            raise

    def wait_until(self, check: Any, what: str, timeout_s: float = 60.0) -> Any:
        """Poll `check()` until it returns something truthy (bounded in time)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            time.sleep(0.25)
        raise AssertionError(f"timed out waiting for {what}; gateway log:\n{self.log_tail()}")

    def wait_for_queue(self, user: str, at_least: int = 1) -> None:
        """Wait until `user` sees at least this many open tasks in their queues."""
        self.wait_until(
            lambda: sum(self.call("GET", "/v1/me", user)["queues"].values()) >= at_least,
            f"{at_least} queued task(s) for {user}",
        )

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the gateway's output."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _seed_users(path: Path) -> dict[str, str]:
    users = UsersFile(path)
    tokens = {}
    for user_id, name, role, tier in PEOPLE:
        users.add(
            User.model_validate(
                {"id": user_id, "name": name, "role": role, "tier": tier, "projects": ["*"]}
            )
        )
        tokens[user_id] = users.issue_token(user_id, PEPPER)[0]
    return tokens


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
            health = json.loads(response.read())
    except (OSError, ValueError):
        return False
    # users reach Redis through the rebuild, so a rebuilding gateway would refuse every token
    return health.get("status") == "ok" and not health.get("rebuilding", True)


def start_gateway(
    infra: Infra, prefix: str, redis_url: str, workdir: Path, **settings: str
) -> Iterator[Gateway]:
    """Run the real gateway under uvicorn until the generator is closed."""
    port = free_port()
    users_file = workdir / "users.json"
    tokens = _seed_users(users_file)
    env = {
        **os.environ,
        "LOUPE_KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
        "LOUPE_REDIS_URL": redis_url,
        "LOUPE_TOPIC_PREFIX": prefix,
        "LOUPE_GATEWAY_USERS_FILE": str(users_file),
        "LOUPE_GATEWAY_TOKEN_PEPPER": PEPPER,
        "LOUPE_GATEWAY_AUTH_CACHE_S": "0",
        **{f"LOUPE_GATEWAY_{k.upper()}": v for k, v in settings.items()},
    }
    log = workdir / "gateway.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                APP,
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    gateway = Gateway(
        f"http://127.0.0.1:{port}", infra.kafka_bootstrap, prefix, tokens, log, process
    )
    try:
        deadline = time.monotonic() + 90
        while not _healthy(gateway.url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not become healthy:\n{gateway.log_tail()}")
            time.sleep(0.25)
        yield gateway
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def gateway_factory(
    infra: Infra, topic_prefix: str, redis_url: str, tmp_path: Path
) -> Iterator[Callable[..., Gateway]]:
    """Start the real gateway for one test with extra ``LOUPE_GATEWAY_*`` settings."""
    with contextlib.ExitStack() as stack:

        def make(**settings: str) -> Gateway:
            running = contextlib.contextmanager(start_gateway)
            return stack.enter_context(
                running(infra, topic_prefix, redis_url, tmp_path, **settings)
            )

        yield make


@pytest.fixture
def gateway(gateway_factory: Callable[..., Gateway]) -> Gateway:
    """The real gateway for one test (own topic prefix, empty Redis, users ann/sam/lee)."""
    return gateway_factory()


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    """Playwright's driver (ships with the PyPI package; no browser download).

    Module-scoped on purpose: while the sync API is open it keeps an asyncio loop running in this
    thread, which would break ``asyncio.run`` in whatever test runs after the UI tests.
    """
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    """Debian's headless Chromium."""
    launched = playwright_driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield launched
    launched.close()


@dataclass
class UiSession:
    """A browser page on the gateway's UI, with the page errors and dialogs it produced."""

    page: Page
    gateway: Gateway
    errors: list[str]
    dialogs: list[str]

    def sign_in(self, user: str) -> None:
        """Sign in through the sign-in screen with the user's token."""
        self.page.goto(self.gateway.url + "/")
        self.page.fill("#token", self.gateway.tokens[user])
        self.page.click("#signin button[type=submit]")
        self.page.wait_for_selector("#who-name")
        self.page.wait_for_selector("#signin", state="detached")

    def screenshot(self, name: str) -> Path:
        """Save a full-page screenshot under artifacts/screenshots/."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def ui(browser: Browser, gateway: Gateway) -> Iterator[UiSession]:
    """A fresh browser context (own sessionStorage) on the gateway's UI."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    session = UiSession(page, gateway, [], [])
    page.on("pageerror", lambda err: session.errors.append(str(err)))
    page.on("dialog", lambda dialog: (session.dialogs.append(dialog.message), dialog.dismiss()))
    yield session
    context.close()
    assert not session.errors, f"uncaught errors in the page: {session.errors}"
