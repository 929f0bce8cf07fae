"""Users file: hashed tokens only, duplicate ids refused, atomic updates."""

from __future__ import annotations

import pytest

from loupe.gateway.logic import Role
from loupe.gateway.users import User, UserError, UsersFile, hash_token
from loupe.schemas import Tier


def test_tokens_are_stored_hashed(tmp_path):
    store = UsersFile(tmp_path / "users.json")
    store.add(User(id="ann", role=Role.REVIEWER, skills=["de"]))
    token, token_id, digest = store.issue_token("ann", "pepper")
    assert token not in (tmp_path / "users.json").read_text()
    assert digest == hash_token(token, "pepper") != hash_token(token, "other")
    assert store.token_hashes() == {digest: "ann"}
    assert token_id in store.read()["users"]["ann"]["tokens"]
    assert store.revoke_tokens("ann") == [digest]
    assert store.token_hashes() == {}


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
    user = store.update("ann", {"role": Role.SENIOR})
    assert user.effective_tier() is Tier.SENIOR
    user = store.update("ann", {"tier": Tier.ANNOTATOR})
    assert user.effective_tier() is Tier.ANNOTATOR
    assert User(id="root", role=Role.ADMIN).effective_tier() is None
    assert [u.id for u in store.users()] == ["ann"]


def test_invalid_update_is_a_user_error_and_changes_nothing(tmp_path):
    store = UsersFile(tmp_path / "users.json")
    store.add(User(id="ann", role=Role.REVIEWER, name="Ann"))
    with pytest.raises(UserError) as caught:
        store.update("ann", {"role": None, "active": None})
    assert caught.value.code == "invalid_user"
    assert store.users()[0].name == "Ann"
    assert store.users()[0].role is Role.REVIEWER


def test_user_changes_refuse_null_except_for_tier():
    from pydantic import ValidationError  # noqa: PLC0415

    from loupe.gateway.routes.users import UserChanges  # noqa: PLC0415

    assert UserChanges.model_validate({"tier": None}).model_fields_set == {"tier"}
    with pytest.raises(ValidationError, match="name, role cannot be null"):
        UserChanges.model_validate({"role": None, "name": None})
