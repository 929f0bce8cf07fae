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
import logging
import os
import secrets
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
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

log = logging.getLogger(__name__)

UserId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
]
SkillTag = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")
]
ALL_PROJECTS = "*"
"""The one project entry that grants every project; it must be said, never implied: a user
with no projects works on none."""
ProjectGrant = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^(\*|[a-z0-9][a-z0-9_.-]*)$")
]
"""A project a user works on, or ``*`` (``ALL_PROJECTS``) alone for every project."""
USERS_FILE_FORMAT = 2
"""Format 2: ``projects: []`` means no project. Format 1 (no ``format`` key) meant every project
by an empty list; such users are read as ``["*"]`` so an upgrade changes nobody's access."""


class User(BaseModel):
    """A person who uses the gateway (tokens are kept separately, hashed)."""

    model_config = ConfigDict(extra="forbid")

    id: UserId
    name: Annotated[str, StringConstraints(max_length=128)] = ""
    role: Role
    tier: Tier | None = None
    skills: Annotated[list[SkillTag], Field(max_length=64)] = Field(default_factory=list)
    projects: Annotated[list[ProjectGrant], Field(max_length=256)] = Field(default_factory=list)
    """The projects this user works on; ``["*"]``: every project; empty: none."""
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    version: Annotated[int, Field(ge=0)] = 0
    """Counts the record's changes, in Redis and in the file alike: a load of the file into
    Redis never replaces a newer version (``SET_USER_IF_NEWER``), so it cannot undo a change
    (a deactivation) whose file write failed or that landed while the load ran."""

    @model_validator(mode="after")
    def _all_projects_alone(self) -> Self:
        """``*`` grants every project, so a list naming others as well is a mistake."""
        if ALL_PROJECTS in self.projects and len(self.projects) > 1:
            raise ValueError(f"user {self.id!r}: projects: '*' (every project) goes alone")
        return self

    @model_validator(mode="after")
    def _tier_within_role(self) -> Self:
        """A tier may lower the queues a person works at, never raise them above their role:
        powers come from the role (a vote at tier ``lead`` is final, so a reviewer given that
        tier could otherwise settle items alone)."""
        ceiling = default_tier(self.role)
        if self.tier is not None and ceiling is not None and self.tier.rank > ceiling.rank:
            raise ValueError(
                f"user {self.id!r}: tier {self.tier.value!r} is above role {self.role.value!r}: "
                "a tier may only be the role's own or a lower one"
            )
        return self

    @property
    def all_projects(self) -> bool:
        """Whether this user works on every project (``projects == ["*"]``)."""
        return ALL_PROJECTS in self.projects

    def works_on(self, project: str) -> bool:
        """Whether this user may see and change ``project``'s work."""
        return self.all_projects or project in self.projects

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


def new_token_id() -> str:
    """The public name of a token (listed, audited, revoked by): not derived from the token."""
    return secrets.token_hex(8)


DEFAULT_TOKEN_TTL_DAYS = 90
"""A token's lifetime unless its issuer chooses a shorter one (``LOUPE_GATEWAY_TOKEN_TTL_DAYS``);
also the lifetime of tokens stored before tokens had an expiry, counted from their creation."""


KEPT_AFTER_EXPIRY = timedelta(days=30)
"""How long Redis keeps an expired token's grant, to tell it from an unknown one in the logs."""


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def token_key(prefix: str, digest: str) -> str:
    """Redis key of a live token's grant."""
    return f"{prefix}tok:{digest}"


def revoked_key(prefix: str, digest: str) -> str:
    """Redis key of a token's revocation marker: written before anything else when a token is
    revoked and never removed by a reload of the users file, so that a revocation whose other
    writes failed still denies (Redis drops it with the token's grant, after the expiry that
    denies the token anyway)."""
    return f"{prefix}tok-revoked:{digest}"


@dataclass(frozen=True)
class TokenGrant:
    """What Redis holds for a live token (``<prefix>tok:<hash>``): whose it is, its id and when it
    expires, so that one read answers "who is this, and is it still valid"."""

    user_id: str
    token_id: str
    expires_ms: int

    @property
    def kept_until_ms(self) -> int:
        """When Redis drops the grant (and a revocation marker): ``KEPT_AFTER_EXPIRY`` after the
        expiry, so that until then a refusal can say "expired" or "revoked", not "unknown"."""
        return self.expires_ms + int(KEPT_AFTER_EXPIRY.total_seconds() * 1000)

    def redis_value(self) -> str:
        """``"<user> <token id> <expiry ms>"`` (neither id can hold a space)."""
        return f"{self.user_id} {self.token_id} {self.expires_ms}"

    @classmethod
    def from_redis(cls, raw: bytes | str) -> TokenGrant | None:
        """The grant, or None for a value in another form (written before tokens expired: such
        a token is unknown until the users file is loaded again, which every start does)."""
        parts = (raw.decode() if isinstance(raw, bytes) else raw).split(" ")
        if len(parts) != 3 or not parts[2].isdigit():
            return None
        return cls(parts[0], parts[1], int(parts[2]))


@dataclass(frozen=True)
class TokenRecord:
    """One stored token as the users file holds it (never the token; the hash is not shown)."""

    user_id: str
    token_id: str
    digest: str
    name: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    def view(self) -> dict[str, Any]:
        """The API's form: no hash."""
        return {
            "token_id": self.token_id,
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
        }

    def grant(self) -> TokenGrant:
        """The Redis form of this token."""
        return TokenGrant(self.user_id, self.token_id, _ms(self.expires_at))


def _stamp(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _record(user_id: str, token_id: str, doc: dict[str, Any]) -> TokenRecord:
    created = datetime.fromisoformat(doc["created_at"])
    expires = _stamp(doc.get("expires_at")) or created + timedelta(days=DEFAULT_TOKEN_TTL_DAYS)
    return TokenRecord(
        user_id=user_id,
        token_id=token_id,
        digest=doc["hash"],
        name=doc.get("name", ""),
        created_at=created,
        expires_at=expires,
        revoked_at=_stamp(doc.get("revoked_at")),
        last_used_at=_stamp(doc.get("last_used_at")),
    )


class UsersFile:
    """The durable users document: ``{"users": {id: {...user, "tokens": {token_id: {...}}}}}``.

    A token's entry: ``hash``, ``name``, ``created_at``, ``expires_at``, and once they happen
    ``revoked_at`` and ``last_used_at``. Revoked tokens stay listed (with when), so that a reload
    of the file into Redis revokes them there too, until ``KEPT_AFTER_EXPIRY`` after their expiry
    (``add_token`` drops them then).
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, Any]:
        """The whole document (empty when the file does not exist yet)."""
        try:
            with self.path.open("rb") as handle:
                data: dict[str, Any] = json.load(handle)
        except FileNotFoundError:
            return {"format": USERS_FILE_FORMAT, "users": {}}
        data.setdefault("users", {})
        if data.get("format", 1) < USERS_FILE_FORMAT:
            for doc in data["users"].values():
                if doc.get("projects", []) == []:
                    log.warning(
                        "users file %s is format 1: %r, with no project list, works on every "
                        "project (projects: ['*']); the next change writes format 2",
                        self.path,
                        doc.get("id"),
                    )
                    doc["projects"] = [ALL_PROJECTS]
            data["format"] = USERS_FILE_FORMAT
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

    def find(self, user_id: str) -> User:
        """One user; ``UserError('user_not_found')``."""
        doc = self.read()["users"].get(user_id)
        if doc is None:
            raise UserError("user_not_found", f"no user {user_id!r}")
        return _user_from_doc(doc)

    def tokens(self, user_id: str | None = None) -> list[TokenRecord]:
        """Every stored token (of one user, ``UserError('user_not_found')`` when unknown)."""
        users = self.read()["users"]
        if user_id is not None and user_id not in users:
            raise UserError("user_not_found", f"no user {user_id!r}")
        return [
            _record(uid, token_id, token)
            for uid, doc in users.items()
            if user_id is None or uid == user_id
            for token_id, token in doc.get("tokens", {}).items()
        ]

    def token(self, user_id: str, token_id: str) -> TokenRecord:
        """One token of a user; ``UserError('token_not_found')``."""
        for record in self.tokens(user_id):
            if record.token_id == token_id:
                return record
        raise UserError("token_not_found", f"user {user_id!r} has no token {token_id!r}")

    def add(self, user: User) -> User:
        """Add a new user; ``UserError('user_exists')`` if the id is taken."""
        with self.edit() as data:
            if user.id in data["users"]:
                raise UserError("user_exists", f"user {user.id!r} already exists")
            data["users"][user.id] = {**user.model_dump(mode="json"), "tokens": {}}
        return user

    def store(self, user: User) -> bool:
        """Write a changed user's record (its tokens kept) unless the file holds the same or a
        newer version; True if written. ``UserError('user_not_found')``."""
        with self.edit() as data:
            doc = data["users"].get(user.id)
            if doc is None:
                raise UserError("user_not_found", f"no user {user.id!r}")
            if doc.get("version", 0) >= user.version:
                return False
            data["users"][user.id] = {**user.model_dump(mode="json"), "tokens": doc["tokens"]}
        return True

    def add_token(
        self, user_id: str, token_id: str, digest: str, name: str, expires_at: datetime
    ) -> None:
        """Store a token's hash under its id, and drop the user's tokens whose expiry is more
        than ``KEPT_AFTER_EXPIRY`` past: Redis has dropped their grants and revocation markers by
        then, so the record denies nothing, and the file would otherwise keep every token ever
        issued (the audit topic keeps their history)."""
        now = utcnow()
        with self.edit() as data:
            doc = data["users"].get(user_id)
            if doc is None:
                raise UserError("user_not_found", f"no user {user_id!r}")
            tokens = doc.setdefault("tokens", {})
            for old_id, old in list(tokens.items()):
                if _record(user_id, old_id, old).expires_at + KEPT_AFTER_EXPIRY <= now:
                    del tokens[old_id]
            tokens[token_id] = {
                "hash": digest,
                "name": name,
                "created_at": now.isoformat(),
                "expires_at": expires_at.isoformat(),
            }

    def issue_token(
        self, user_id: str, pepper: str, name: str = "", *, expires_at: datetime | None = None
    ) -> tuple[str, str, str]:
        """Create a token for a user (expiring after ``DEFAULT_TOKEN_TTL_DAYS`` unless told);
        return (token, token_id, token_hash). The token is shown only once."""
        token, token_id = new_token(), new_token_id()
        digest = hash_token(token, pepper)
        expiry = expires_at or utcnow() + timedelta(days=DEFAULT_TOKEN_TTL_DAYS)
        self.add_token(user_id, token_id, digest, name, expiry)
        return token, token_id, digest

    def revoke(self, user_id: str, token_ids: list[str]) -> None:
        """Mark tokens of a user revoked (kept, with when; revoking again changes nothing)."""
        now = utcnow().isoformat()
        with self.edit() as data:
            doc = data["users"].get(user_id)
            if doc is None:
                raise UserError("user_not_found", f"no user {user_id!r}")
            for token_id in token_ids:
                token = doc.get("tokens", {}).get(token_id)
                if token is not None and not token.get("revoked_at"):
                    token["revoked_at"] = now

    def record_use(self, used: dict[str, datetime]) -> None:
        """Write last-use times (token hash -> when), keeping the later of stored and given."""
        with self.edit() as data:
            for doc in data["users"].values():
                for token in doc.get("tokens", {}).values():
                    at = used.get(token["hash"])
                    stored = _stamp(token.get("last_used_at"))
                    if at is not None and (stored is None or at > stored):
                        token["last_used_at"] = at.isoformat()


def changed_user(user: User, changes: dict[str, Any]) -> User:
    """``user`` with ``changes`` applied and validated, as the next version;
    ``UserError('invalid_user')``."""
    merged = user.model_copy(update={**changes, "version": user.version + 1})
    try:
        return User.model_validate(merged.model_dump())
    except ValidationError as exc:
        raise UserError("invalid_user", str(exc.errors(include_url=False)[0]["msg"])) from None


def check_an_admin_remains(users: Iterable[User], before: User, after: User) -> None:
    """``UserError('last_admin')`` when changing ``before`` into ``after`` leaves no active
    admin among ``users``: the admin API would lock everyone out of itself, and only a shell on
    the server (``loupe users``) could recover."""
    if not (before.active and before.role is Role.ADMIN):
        return
    if after.active and after.role is Role.ADMIN:
        return
    others = [u for u in users if u.id != before.id and u.active and u.role is Role.ADMIN]
    if not others:
        raise UserError(
            "last_admin",
            f"{before.id!r} is the last active admin: make another user admin first",
        )


def _user_from_doc(doc: dict[str, Any]) -> User:
    return User.model_validate({k: v for k, v in doc.items() if k != "tokens"})
