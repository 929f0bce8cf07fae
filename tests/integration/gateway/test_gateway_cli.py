"""``loupe users`` on real Kafka and Redis: each change's audit record is on ``audit`` (actor
``cli:<login>``), and a token the CLI revoked is refused by a running gateway."""

from __future__ import annotations

import asyncio

import pytest
from click.testing import CliRunner

from loupe.gateway.cli import users
from loupe.gateway.logic import Role
from loupe.gateway.settings import get_settings
from loupe.stack import free_port

from .test_gateway_tokens import _audit_events


@pytest.fixture
def cli_env(gateway, monkeypatch):
    """The CLI's environment: the running gateway's Kafka, Redis, users file and pepper."""
    settings = gateway.settings
    for name, value in {**settings.kafka.env(), **settings.redis.env()}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LOUPE_TOPIC_PREFIX", settings.topic_prefix)
    monkeypatch.setenv("LOUPE_GATEWAY_USERS_FILE", str(settings.users_file))
    monkeypatch.setenv("LOUPE_GATEWAY_REDIS_PREFIX", settings.redis_prefix)
    monkeypatch.setenv("LOUPE_GATEWAY_TOKEN_PEPPER", settings.token_pepper.get_secret_value())
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def test_cli_changes_are_audited_and_reach_the_gateway(gateway, cli_env):
    settings = gateway.settings
    added = CliRunner().invoke(users, ["add", "ann", "--role", "reviewer", "--token"])
    assert added.exit_code == 0, added.output
    token = added.output.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    assert (await gateway.client.get("/v1/me", headers=headers)).status_code == 200
    revoked = CliRunner().invoke(users, ["revoke", "ann"])
    assert revoked.exit_code == 0, revoked.output
    assert (await gateway.client.get("/v1/me", headers=headers)).status_code == 401

    events = _audit_events(settings, "ann")
    assert [e["details"]["change"] for e in events] == [
        "user_created",
        "token_issued",
        "tokens_revoked",
    ]
    assert all(e["actor"]["id"].startswith("cli:") for e in events)
    assert token not in str(events)
    gateway.add_user("boss", Role.ADMIN)
    listed = (await gateway.call("GET", "/v1/users/ann/tokens", "boss")).json()["tokens"]
    assert [t["token_id"] for t in listed] == [events[1]["details"]["token_id"]]


async def test_a_revocation_redis_did_not_get_fails_until_synced(gateway, cli_env, monkeypatch):
    """Revoked in the file but not in Redis, a running gateway still accepts the token: the CLI
    must not report success then; ``loupe users sync`` finishes the job once Redis answers."""
    settings = gateway.settings
    added = CliRunner().invoke(users, ["add", "bea", "--role", "reviewer", "--token"])
    assert added.exit_code == 0, added.output
    headers = {"Authorization": f"Bearer {added.output.strip().splitlines()[-1]}"}
    assert (await gateway.client.get("/v1/me", headers=headers)).status_code == 200

    monkeypatch.setenv("LOUPE_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    get_settings.cache_clear()
    revoked = CliRunner().invoke(users, ["revoke", "bea"])
    assert revoked.exit_code != 0, revoked.output
    assert "loupe users sync" in revoked.output
    await asyncio.sleep(settings.auth_cache_s + 0.5)
    assert (await gateway.client.get("/v1/me", headers=headers)).status_code == 200

    monkeypatch.setenv("LOUPE_REDIS_URL", settings.redis.url)
    get_settings.cache_clear()
    synced = CliRunner().invoke(users, ["sync"])
    assert synced.exit_code == 0, synced.output
    await asyncio.sleep(settings.auth_cache_s + 0.5)
    assert (await gateway.client.get("/v1/me", headers=headers)).status_code == 401
