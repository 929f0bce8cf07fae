"""``loupe gateway`` (serve the API) and ``loupe users add|token|list`` (admin CLI)."""

from __future__ import annotations

import signal
from datetime import datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from loupe.gateway.logic import Role
from loupe.schemas import Tier

if TYPE_CHECKING:
    from loupe.gateway.settings import GatewaySettings


@click.command()
@click.option("--host", default=None, help="Bind address (default: LOUPE_GATEWAY_HOST).")
@click.option("--port", type=int, default=None, help="Port (default: LOUPE_GATEWAY_PORT).")
def gateway(host: str | None, port: int | None) -> None:
    """Run the reviewer gateway (HTTP API + UI, Kafka consumer, lease sweeper)."""
    import uvicorn  # noqa: PLC0415

    from loupe.gateway.app import check_connections, create_app  # noqa: PLC0415
    from loupe.gateway.settings import get_settings  # noqa: PLC0415
    from loupe.runtime.kafka import KafkaAccessError  # noqa: PLC0415
    from loupe.runtime.redis_access import RedisAccessError  # noqa: PLC0415

    settings = get_settings()
    try:
        check_connections(settings)
    except (KafkaAccessError, RedisAccessError) as exc:  # a refused password or certificate
        raise click.ClickException(str(exc)) from None
    # uvicorn shuts down gracefully on SIGTERM and then re-raises the signal to the handler that
    # was installed before it started; make that a clean exit like the other services.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        create_app(settings, own_process=True),
        host=host or settings.host,
        port=port if port is not None else settings.port,
        loop="uvloop",
        http="httptools",
        log_level=settings.workers_log_level,
        access_log=False,
    )


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


@click.group()
@click.option(
    "--unaudited",
    is_flag=True,
    help="Make the change even if Kafka does not acknowledge its audit record (break glass).",
)
@click.pass_context
def users(ctx: click.Context, unaudited: bool) -> None:
    """Manage gateway users and API tokens (writes the users file and the Redis cache).

    Every change is audited like the admin API's: its audit record (``user_change``, actor
    ``cli:<login>``) is acknowledged by Kafka before anything changes, else nothing changes
    (``--unaudited`` makes it anyway and says so).
    """
    ctx.obj = {"unaudited": unaudited}


def _audit(user_id: str, change: str, **details: Any) -> None:
    """Publish a CLI change's audit record and wait for Kafka's acknowledgement before it is
    made; ``ClickException`` (nothing changed) when Kafka does not acknowledge it."""
    import getpass  # noqa: PLC0415
    import socket  # noqa: PLC0415

    from confluent_kafka import KafkaError, Message, Producer  # noqa: PLC0415

    from loupe.gateway.audit import audit_event  # noqa: PLC0415
    from loupe.gateway.settings import get_settings  # noqa: PLC0415
    from loupe.runtime.kafka import producer_config  # noqa: PLC0415
    from loupe.schemas import Actor, AuditAction  # noqa: PLC0415
    from loupe.schemas.topics import AUDIT  # noqa: PLC0415

    settings = get_settings()
    event = audit_event(
        Actor(id=f"cli:{getpass.getuser()}", role="operator"),
        AuditAction.USER_CHANGE,
        details={"user": user_id, "change": change, "client": socket.gethostname(), **details},
    )
    timeout_ms = int(settings.kafka_timeout_s * 1000)
    producer = Producer(producer_config(settings.kafka, extra={"message.timeout.ms": timeout_ms}))
    outcome: list[KafkaError | None] = []

    def delivered(error: KafkaError | None, _message: Message) -> None:
        outcome.append(error)

    producer.produce(
        settings.topic(AUDIT.name),
        key=user_id.encode(),
        value=event.to_json_bytes(),
        on_delivery=delivered,
    )
    producer.flush(settings.kafka_timeout_s + 5)
    if outcome != [None]:
        reason = outcome[0] if outcome else "no answer"
        if click.get_current_context().obj["unaudited"]:
            click.echo(f"warning: not audited ({reason}); --unaudited: changing anyway", err=True)
            return
        raise click.ClickException(
            f"nothing was changed: Kafka did not acknowledge the audit record ({reason}); "
            "--unaudited changes it anyway"
        )


def _sync() -> int:
    """Copy the users file into Redis, where running gateways read it; return the users loaded.

    Redis not reachable is a ``ClickException`` (exit 1): the file holds the change, but running
    gateways go on authenticating from Redis (a revoked token still works) until ``loupe users
    sync`` succeeds or they restart, so the command must not report success.
    """
    import redis  # noqa: PLC0415

    from loupe.gateway.projector import Projector  # noqa: PLC0415
    from loupe.gateway.settings import get_settings  # noqa: PLC0415
    from loupe.gateway.users import UsersFile  # noqa: PLC0415
    from loupe.runtime.connections import redis_kwargs  # noqa: PLC0415

    settings = get_settings()
    client = redis.Redis.from_url(
        **redis_kwargs(settings.redis), socket_timeout=10, socket_connect_timeout=10
    )
    try:
        return Projector(client, settings.redis_prefix).load_users(UsersFile(settings.users_file))
    except redis.RedisError as exc:
        raise click.ClickException(
            f"the users file holds the change, but Redis is not reachable ({exc}): running "
            "gateways do not see it (a revoked token still works) until `loupe users sync` "
            "succeeds or they restart"
        ) from None
    finally:
        client.close()


@users.command("sync")
def sync() -> None:
    """Load the users file into Redis (after a change Redis did not get, or a hand edit).

    Not audited: it changes nothing the file does not already say; a change made by editing the
    file by hand has no audit record (use the commands or the admin API for that).
    """
    click.echo(f"loaded {_sync()} user(s) into Redis")


@users.command("add")
@click.argument("user_id")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--name", default="")
@click.option("--tier", type=click.Choice([t.value for t in Tier]), default=None)
@click.option("--skill", "skills", multiple=True, help="Skill/language tag (repeatable).")
@click.option(
    "--project",
    "projects",
    multiple=True,
    help="A project the user works on (repeatable); '*' for every project. None: no project.",
)
@click.option("--token/--no-token", default=False, help="Also issue a token and print it.")
def add(
    *,
    user_id: str,
    role: str,
    name: str,
    tier: str | None,
    skills: tuple[str, ...],
    projects: tuple[str, ...],
    token: bool,
) -> None:
    """Add a user."""
    from pydantic import ValidationError  # noqa: PLC0415

    from loupe.gateway.settings import get_settings  # noqa: PLC0415
    from loupe.gateway.users import User, UserError, UsersFile  # noqa: PLC0415

    settings = get_settings()
    store = UsersFile(settings.users_file)
    try:
        user = User(
            id=user_id,
            name=name,
            role=Role(role),
            tier=Tier(tier) if tier else None,
            skills=list(skills),
            projects=list(projects),
        )
        if any(u.id == user.id for u in store.users()):
            raise UserError("user_exists", f"user {user.id!r} already exists")
        _audit(user.id, "user_created", after=user.model_dump(mode="json"))
        store.add(user)
    except (UserError, ValidationError) as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from None
    click.echo(f"added {user.id} ({user.role.value})")
    if not user.projects:
        click.echo(f"note: {user.id} works on no project yet (--project NAME or '*')", err=True)
    if token:
        click.echo(_issue(user_id, ""))
    _sync()


def _issue(user_id: str, name: str) -> str:
    """Audit, then store a new token of ``user_id``; return it (to be shown once)."""
    from loupe.gateway.settings import get_settings  # noqa: PLC0415
    from loupe.gateway.users import (  # noqa: PLC0415
        UsersFile,
        hash_token,
        new_token,
        new_token_id,
    )

    settings = get_settings()
    store = UsersFile(settings.users_file)
    store.find(user_id)
    secret, token_id = new_token(), new_token_id()
    expires_at = _expiry(settings)
    _audit(user_id, "token_issued", token_id=token_id, name=name, expires_at=expires_at.isoformat())
    digest = hash_token(secret, settings.token_pepper.get_secret_value())
    store.add_token(user_id, token_id, digest, name, expires_at)
    return secret


@users.command("token")
@click.argument("user_id")
@click.option("--name", default="", help="A label for the token.")
def token(user_id: str, name: str) -> None:
    """Issue an API token for a user and print it (shown only once)."""
    from loupe.gateway.users import UserError  # noqa: PLC0415

    try:
        secret = _issue(user_id, name)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    _sync()
    click.echo(secret)


def _expiry(settings: GatewaySettings) -> datetime:
    """When a token issued now expires: ``LOUPE_GATEWAY_TOKEN_TTL_DAYS`` from now."""
    from loupe.schemas import utcnow  # noqa: PLC0415

    return utcnow() + timedelta(days=settings.token_ttl_days)


@users.command("revoke")
@click.argument("user_id")
@click.option("--token-id", "token_ids", multiple=True, help="Only this token (repeatable).")
def revoke(user_id: str, token_ids: tuple[str, ...]) -> None:
    """Revoke a user's tokens (all, or the given ids): audited, then the users file, then Redis.

    A running gateway denies the tokens once Redis has them (at once when Redis answers, else
    at its next start). With Kafka down, ``loupe users --unaudited revoke`` still revokes.
    """
    from loupe.gateway.settings import get_settings  # noqa: PLC0415
    from loupe.gateway.users import UserError, UsersFile  # noqa: PLC0415

    store = UsersFile(get_settings().users_file)
    try:
        ids = list(token_ids) or [t.token_id for t in store.tokens(user_id)]
        for token_id in ids:
            store.token(user_id, token_id)
        change = "token_revoked" if token_ids else "tokens_revoked"
        _audit(user_id, change, token_ids=ids)
        store.revoke(user_id, ids)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    _sync()
    click.echo(f"revoked {len(ids)} token(s) of {user_id}")


@users.command("list")
def list_users() -> None:
    """List users (id, role, tier, skills, active)."""
    from loupe.gateway.settings import get_settings  # noqa: PLC0415
    from loupe.gateway.users import UsersFile  # noqa: PLC0415

    for user in sorted(UsersFile(get_settings().users_file).users(), key=lambda u: u.id):
        tier = user.effective_tier()
        click.echo(
            f"{user.id}\t{user.role.value}\t{tier.value if tier else '-'}\t"
            f"{','.join(user.skills) or '-'}\t{'active' if user.active else 'inactive'}"
        )
