"""Users, roles and API tokens: a durable JSON file plus a Redis cache of it.

The file (``LOUPE_GATEWAY_USERS_FILE``) is the durable copy: it survives a Redis flush and is
reloaded into Redis at start-up and on every rebuild. Tokens are random
(``secrets.token_urlsafe``) and only their HMAC-SHA-256 (keyed by the server pepper) is stored.
Writers take an exclusive ``fcntl`` lock and replace the file atomically.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from loupe.gateway.logic import Role, default_tier
from loupe.schemas import Tier, utcnow

UserId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
]
SkillTag = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")
]
Slug = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
]


class User(BaseModel):
    """A person who uses the gateway (tokens are kept separately, hashed)."""

    model_config = ConfigDict(extra="forbid")

    id: UserId
    name: Annotated[str, StringConstraints(max_length=128)] = ""
    role: Role
    tier: Tier | None = None
    skills: Annotated[list[SkillTag], Field(max_length=64)] = Field(default_factory=list)
    projects: Annotated[list[Slug], Field(max_length=256)] = Field(default_factory=list)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _tier_within_role(self) -> Self:
        """A tier may lower the queues a person works at, never raise them above their role:
        powers come from the role (a vote at tier ``lead`` is final, so a reviewer given that
        tier could otherwise settle items alone)."""
        ceiling = default_tier(self.role)
        if self.tier is not None and ceiling is not None and self.tier.rank > ceiling.rank:
            raise ValueError(
                f"tier {self.tier.value!r} is above role {self.role.value!r}: a tier may only "
                "be the role's own or a lower one"
            )
        return self

    def works_on(self, project: str) -> bool:
        """Whether this user may see and change ``project``'s work (an empty ``projects``
        list: every project)."""
        return not self.projects or project in self.projects

    def effective_tier(self) -> Tier | None:
        """The queue tier this user works at (None: may not claim)."""
        if self.role is Role.ADMIN:
            return None
        return self.tier or default_tier(self.role)


class UserError(ValueError):
    """A user operation that cannot be done (unknown user, duplicate id)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def hash_token(token: str, pepper: str) -> str:
    """The stored form of a token: HMAC-SHA-256 keyed by the server pepper, hex."""
    return hmac.new(pepper.encode(), token.encode(), hashlib.sha256).hexdigest()


def new_token() -> str:
    """A fresh random API token."""
    return "lp_" + secrets.token_urlsafe(32)


class UsersFile:
    """The durable users document: ``{"users": {id: {...user, "tokens": {token_id: {...}}}}}``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, Any]:
        """The whole document (empty when the file does not exist yet)."""
        try:
            with self.path.open("rb") as handle:
                data: dict[str, Any] = json.load(handle)
        except FileNotFoundError:
            return {"users": {}}
        data.setdefault("users", {})
        return data

    @contextlib.contextmanager
    def edit(self) -> Iterator[dict[str, Any]]:
        """Lock, yield the document for in-place changes, then write it back atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = self.read()
                yield data
                fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".users-")
                with os.fdopen(fd, "w") as handle:
                    json.dump(data, handle, indent=1, sort_keys=True)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.chmod(tmp, 0o600)
                os.replace(tmp, self.path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def users(self) -> list[User]:
        """Every user in the file."""
        return [_user_from_doc(doc) for doc in self.read()["users"].values()]

    def token_hashes(self) -> dict[str, str]:
        """Token hash -> user id for every stored token."""
        return {
            token["hash"]: user_id
            for user_id, doc in self.read()["users"].items()
            for token in doc.get("tokens", {}).values()
        }

    def add(self, user: User) -> User:
        """Add a new user; ``UserError('user_exists')`` if the id is taken."""
        with self.edit() as data:
            if user.id in data["users"]:
                raise UserError("user_exists", f"user {user.id!r} already exists")
            data["users"][user.id] = {**user.model_dump(mode="json"), "tokens": {}}
        return user

    def update(self, user_id: str, changes: dict[str, Any]) -> User:
        """Apply field changes to a user and return the result."""
        with self.edit() as data:
            doc = data["users"].get(user_id)
            if doc is None:
                raise UserError("user_not_found", f"no user {user_id!r}")
            merged = _user_from_doc(doc).model_copy(update=changes)
            try:
                user = User.model_validate(merged.model_dump())
            except ValidationError as exc:
                raise UserError(
                    "invalid_user", str(exc.errors(include_url=False)[0]["msg"])
                ) from None
            data["users"][user_id] = {**user.model_dump(mode="json"), "tokens": doc["tokens"]}
        return user

    def issue_token(self, user_id: str, pepper: str, name: str = "") -> tuple[str, str, str]:
        """Create a token for a user; return (token, token_id, token_hash). Shown only once."""
        token = new_token()
        digest = hash_token(token, pepper)
        token_id = secrets.token_hex(8)
        with self.edit() as data:
            doc = data["users"].get(user_id)
            if doc is None:
                raise UserError("user_not_found", f"no user {user_id!r}")
            doc.setdefault("tokens", {})[token_id] = {
                "hash": digest,
                "name": name,
                "created_at": utcnow().isoformat(),
            }
        return token, token_id, digest

    def revoke_tokens(self, user_id: str) -> list[str]:
        """Remove every token of a user; return the removed hashes."""
        with self.edit() as data:
            doc = data["users"].get(user_id)
            if doc is None:
                raise UserError("user_not_found", f"no user {user_id!r}")
            hashes = [token["hash"] for token in doc.get("tokens", {}).values()]
            doc["tokens"] = {}
        return hashes


def _user_from_doc(doc: dict[str, Any]) -> User:
    return User.model_validate({k: v for k, v in doc.items() if k != "tokens"})


def user_to_redis(user: User) -> dict[str, str]:
    """The Redis hash form of a user."""
    return {"json": user.model_dump_json()}


def user_from_redis(raw: bytes | str) -> User:
    """Parse the cached JSON form of a user."""
    return User.model_validate_json(raw)
