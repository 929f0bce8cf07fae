"""Users file: hashed tokens only, with an expiry, revoked one by one, last use kept; duplicate
ids refused, atomic updates."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from loupe.gateway.logic import Role
from loupe.gateway.users import (
    DEFAULT_TOKEN_TTL_DAYS,
    KEPT_AFTER_EXPIRY,
    TokenGrant,
    User,
    UserError,
    UsersFile,
    changed_user,
    hash_token,
)
from loupe.schemas import Tier, utcnow


def test_tokens_are_stored_hashed(tmp_path):
    store = UsersFile(tmp_path / "users.json")
    store.add(User(id="ann", role=Role.REVIEWER, skills=["de"]))
    token, token_id, digest = store.issue_token("ann", "pepper")
    assert token not in (tmp_path / "users.json").read_text()
    assert digest == hash_token(token, "pepper") != hash_token(token, "other")
    [record] = store.tokens("ann")
    assert (record.token_id, record.digest, record.revoked_at) == (token_id, digest, None)
    assert token not in str(record.view()) and digest not in str(record.view())


def test_tokens_expire_and_are_revoked_one_by_one(tmp_path):
    store = UsersFile(tmp_path / "users.json")
    store.add(User(id="ann", role=Role.REVIEWER))
    soon = utcnow() + timedelta(hours=1)
    _, laptop, _ = store.issue_token("ann", "pepper", "laptop", expires_at=soon)
    _, phone, _ = store.issue_token("ann", "pepper", "phone")
    assert store.token("ann", laptop).expires_at == soon
    default = store.token("ann", phone).expires_at - utcnow()
    assert (
        timedelta(days=DEFAULT_TOKEN_TTL_DAYS - 1)
        < default
        <= timedelta(days=DEFAULT_TOKEN_TTL_DAYS)
    )
    store.revoke("ann", [laptop])
    revoked_at = store.token("ann", laptop).revoked_at
    assert revoked_at is not None and store.token("ann", phone).revoked_at is None
    store.revoke("ann", [laptop])  # again: nothing changes
    assert store.token("ann", laptop).revoked_at == revoked_at
    with pytest.raises(UserError) as missing:
        store.token("ann", "nope")
    assert missing.value.code == "token_not_found"


def test_last_use_keeps_the_latest(tmp_path):
    store = UsersFile(tmp_path / "users.json")
    store.add(User(id="ann", role=Role.REVIEWER))
    _, token_id, digest = store.issue_token("ann", "pepper")
    later = utcnow()
    store.record_use({digest: later, "unknown-hash": later})
    store.record_use({digest: later - timedelta(minutes=1)})  # another replica, older
    assert store.token("ann", token_id).last_used_at == later


def test_a_token_stored_before_expiry_existed_expires_after_the_default_lifetime(tmp_path):
    store = UsersFile(tmp_path / "users.json")
    store.add(User(id="ann", role=Role.REVIEWER))
    _, token_id, _ = store.issue_token("ann", "pepper")
    with store.edit() as data:
        del data["users"]["ann"]["tokens"][token_id]["expires_at"]
    record = store.token("ann", token_id)
    assert record.expires_at == record.created_at + timedelta(days=DEFAULT_TOKEN_TTL_DAYS)


def test_grants_read_back_and_older_values_are_unknown():
    grant = TokenGrant("ann", "0123abcd", 1_800_000_000_000)
    assert TokenGrant.from_redis(grant.redis_value().encode()) == grant
    assert TokenGrant.from_redis(b"ann") is None


def test_duplicates_and_unknown_users(tmp_path):
    store = UsersFile(tmp_path / "users.json")
    store.add(User(id="ann", role=Role.REVIEWER))
    with pytest.raises(UserError) as exc:
        store.add(User(id="ann", role=Role.LEAD))
    assert exc.value.code == "user_exists"
    with pytest.raises(UserError):
        store.issue_token("nobody", "p")


def test_update_and_effective_tier(tmp_path):
    store = UsersFile(tmp_path / "users.json")
    store.add(User(id="ann", role=Role.REVIEWER))
    user = changed_user(store.find("ann"), {"role": Role.SENIOR})
    assert store.store(user)
    assert user.effective_tier() is Tier.SENIOR
    user = changed_user(store.find("ann"), {"tier": Tier.ANNOTATOR})
    assert store.store(user)
    assert not store.store(user)  # the same version again changes nothing
    assert store.find("ann").version == 2
    assert user.effective_tier() is Tier.ANNOTATOR
    assert User(id="root", role=Role.ADMIN).effective_tier() is None
    assert [u.id for u in store.users()] == ["ann"]


def test_invalid_update_is_a_user_error_and_changes_nothing(tmp_path):
    store = UsersFile(tmp_path / "users.json")
    store.add(User(id="ann", role=Role.REVIEWER, name="Ann"))
    with pytest.raises(UserError) as caught:
        changed_user(store.find("ann"), {"role": None, "active": None})
    assert caught.value.code == "invalid_user"
    assert store.users()[0].name == "Ann"
    assert store.users()[0].role is Role.REVIEWER


def test_user_changes_refuse_null_except_for_tier():
    from pydantic import ValidationError  # noqa: PLC0415

    from loupe.gateway.routes.users import UserChanges  # noqa: PLC0415

    assert UserChanges.model_validate({"tier": None}).model_fields_set == {"tier"}
    with pytest.raises(ValidationError, match="name, role cannot be null"):
        UserChanges.model_validate({"role": None, "name": None})


def test_tokens_long_expired_leave_the_file_when_another_is_issued(tmp_path):
    """The file does not grow with every token ever issued: a token whose expiry is more than
    ``KEPT_AFTER_EXPIRY`` past (Redis has dropped its grant and marker) goes when its user gets a
    new one; a token still inside that window stays listed, revoked or not."""
    store = UsersFile(tmp_path / "users.json")
    store.add(User(id="ann", role=Role.REVIEWER))
    _, old, _ = store.issue_token("ann", "pepper")
    _, recent, _ = store.issue_token("ann", "pepper")
    store.revoke("ann", [old, recent])
    with store.edit() as data:
        tokens = data["users"]["ann"]["tokens"]
        gone = utcnow() - KEPT_AFTER_EXPIRY - timedelta(seconds=1)
        tokens[old]["expires_at"] = gone.isoformat()
        tokens[recent]["expires_at"] = (gone + timedelta(minutes=5)).isoformat()
    _, new, _ = store.issue_token("ann", "pepper")
    assert {t.token_id for t in store.tokens("ann")} == {recent, new}


def test_no_projects_is_no_project_and_every_project_is_said_explicitly():
    """Fail closed: a user created without projects works on none; ``*`` grants every one and
    goes alone."""
    nobody = User(id="ann", role=Role.REVIEWER)
    assert not nobody.works_on("demo") and not nobody.all_projects
    everyone = User(id="ann", role=Role.REVIEWER, projects=["*"])
    assert everyone.works_on("demo") and everyone.works_on("other") and everyone.all_projects
    one = User(id="ann", role=Role.REVIEWER, projects=["demo"])
    assert one.works_on("demo") and not one.works_on("other") and not one.all_projects
    with pytest.raises(ValueError, match="goes alone"):
        User(id="ann", role=Role.REVIEWER, projects=["*", "demo"])
    with pytest.raises(ValueError):
        User(id="ann", role=Role.REVIEWER, projects=["de*"])


def test_a_format_1_users_file_keeps_everyones_access(tmp_path):
    """Before format 2 an empty project list meant every project: an upgrade reads those users
    as ``["*"]`` (and writes format 2), so nobody loses or gains access."""
    path = tmp_path / "users.json"
    path.write_text(
        json.dumps(
            {
                "users": {
                    "ann": {"id": "ann", "role": "reviewer", "projects": [], "tokens": {}},
                    "bob": {"id": "bob", "role": "reviewer", "projects": ["demo"], "tokens": {}},
                }
            }
        )
    )
    store = UsersFile(path)
    assert store.find("ann").projects == ["*"] and store.find("bob").projects == ["demo"]
    store.add(User(id="cy", role=Role.REVIEWER))
    written = json.loads(path.read_text())
    assert written["format"] == 2
    assert written["users"]["ann"]["projects"] == ["*"] and store.find("cy").projects == []
