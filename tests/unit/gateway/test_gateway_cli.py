"""``loupe users``: nothing changes unless Kafka acknowledged the audit record, unless told to
(``--unaudited``, e.g. to revoke tokens while Kafka is down); a change Redis did not get is
not reported as done."""

from __future__ import annotations

from click.testing import CliRunner

from loupe.gateway.cli import users
from loupe.gateway.logic import Role
from loupe.gateway.settings import get_settings
from loupe.gateway.users import User, UsersFile


def test_without_kafka_nothing_changes_unless_unaudited(tmp_path, monkeypatch):
    path = tmp_path / "users.json"
    monkeypatch.setenv("LOUPE_GATEWAY_USERS_FILE", str(path))
    monkeypatch.setenv("LOUPE_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # nothing listens there
    monkeypatch.setenv("LOUPE_GATEWAY_KAFKA_TIMEOUT_S", "1")
    monkeypatch.setenv("LOUPE_REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    store = UsersFile(path)
    store.add(User(id="ann", role=Role.REVIEWER, projects=["*"]))
    _, laptop, _ = store.issue_token("ann", "p")
    _, phone, _ = store.issue_token("ann", "p")
    try:
        refused = CliRunner().invoke(users, ["revoke", "ann", "--token-id", laptop])
        assert refused.exit_code != 0 and "nothing was changed" in refused.output
        assert store.token("ann", laptop).revoked_at is None
        added = CliRunner().invoke(users, ["add", "bob", "--role", "reviewer"])
        assert added.exit_code != 0 and [u.id for u in store.users()] == ["ann"]

        # The file changes; Redis is down too, so running gateways would not see it: exit 1.
        one = CliRunner().invoke(users, ["--unaudited", "revoke", "ann", "--token-id", laptop])
        assert one.exit_code == 1, one.output
        assert "not audited" in one.output and "loupe users sync" in one.output
        assert store.token("ann", laptop).revoked_at is not None
        assert store.token("ann", phone).revoked_at is None
        unknown = CliRunner().invoke(users, ["--unaudited", "revoke", "ann", "--token-id", "x"])
        assert unknown.exit_code != 0 and "no token 'x'" in unknown.output
        every = CliRunner().invoke(users, ["--unaudited", "revoke", "ann"])
        assert every.exit_code == 1 and "loupe users sync" in every.output, every.output
        assert all(t.revoked_at is not None for t in store.tokens("ann"))
    finally:
        get_settings.cache_clear()
