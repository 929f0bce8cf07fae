"""``loupe users revoke``: the way to revoke tokens when the API cannot be used."""

from __future__ import annotations

from click.testing import CliRunner

from loupe.gateway.cli import users
from loupe.gateway.logic import Role
from loupe.gateway.settings import get_settings
from loupe.gateway.users import User, UsersFile


def test_revoke_marks_one_or_every_token_of_a_user(tmp_path, monkeypatch):
    path = tmp_path / "users.json"
    monkeypatch.setenv("LOUPE_GATEWAY_USERS_FILE", str(path))
    monkeypatch.setenv("LOUPE_REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    get_settings.cache_clear()
    store = UsersFile(path)
    store.add(User(id="ann", role=Role.REVIEWER))
    _, laptop, _ = store.issue_token("ann", "p")
    _, phone, _ = store.issue_token("ann", "p")
    try:
        one = CliRunner().invoke(users, ["revoke", "ann", "--token-id", laptop])
        assert one.exit_code == 0, one.output
        assert store.token("ann", laptop).revoked_at is not None
        assert store.token("ann", phone).revoked_at is None
        assert "Redis not reachable" in one.output
        unknown = CliRunner().invoke(users, ["revoke", "ann", "--token-id", "nope"])
        assert unknown.exit_code != 0 and "no token 'nope'" in unknown.output
        every = CliRunner().invoke(users, ["revoke", "ann"])
        assert every.exit_code == 0, every.output
        assert all(t.revoked_at is not None for t in store.tokens("ann"))
    finally:
        get_settings.cache_clear()
