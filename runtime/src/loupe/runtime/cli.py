"""The ``loupe`` command: one entry point whose subcommands come from the installed members.

Each member registers its commands under the ``loupe.commands`` entry-point group, so services
never import each other and ``loupe --help`` lists exactly what is installed.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

import click

from loupe.runtime.logs import install_repeat_limiter

ENTRY_POINT_GROUP = "loupe.commands"


class _PluginGroup(click.Group):
    """A click group that loads subcommands lazily from entry points."""

    def _entry_points(self) -> dict[str, object]:
        return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._entry_points()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        entry = self._entry_points().get(cmd_name)
        if entry is None:
            return None
        try:
            loaded = entry.load()  # type: ignore[attr-defined]
        except ImportError as exc:
            return _unavailable(cmd_name, f"cannot be loaded: {exc}")
        if not isinstance(loaded, click.Command):
            return _unavailable(cmd_name, "is not a click command")
        return loaded


def _unavailable(name: str, problem: str) -> click.Command:
    """A stand-in that explains why an installed subcommand cannot run (help stays usable)."""

    def fail() -> None:
        raise click.ClickException(f"'loupe {name}' {problem}")

    return click.Command(
        name,
        callback=fail,
        help=f"(unavailable: {problem})",
        context_settings={"ignore_unknown_options": True},
    )


@click.group(cls=_PluginGroup)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    envvar="LOUPE_LOG_LEVEL",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def main(log_level: str) -> None:
    """Loupe: Kafka-native human-in-the-loop review of machine-learning labels."""
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    install_repeat_limiter()


@main.group()
def topics() -> None:
    """Loupe's Kafka topics (the registry in loupe.schemas.topics)."""


@topics.command("ensure")
@click.option(
    "--partitions",
    type=click.IntRange(1, 1_000),
    default=None,
    help="Partitions for item-keyed topics (default: the registry's).",
)
def ensure(partitions: int | None) -> None:
    """Create every registry topic that does not exist yet (idempotent)."""
    from loupe.runtime.kafka import ensure_topics  # noqa: PLC0415  (keeps `loupe --help` fast)
    from loupe.runtime.settings import ServiceSettings  # noqa: PLC0415

    settings = ServiceSettings()
    for name in ensure_topics(settings.kafka, prefix=settings.topic_prefix, partitions=partitions):
        click.echo(name)


@topics.command("acls")
@click.option(
    "--apply",
    "apply_",
    is_flag=True,
    help="Create the ACLs on the broker (connecting as LOUPE_KAFKA_*: a super user).",
)
@click.option(
    "--user-prefix",
    default="loupe-",
    show_default=True,
    help="Each service's principal is User:<prefix><service>.",
)
def acls(apply_: bool, user_prefix: str) -> None:
    """Print each service's Kafka grants for LOUPE_TOPIC_PREFIX (and the services' own group and
    app-id variables); with --apply, create them.

    One line per grant: principal, resource, name (a trailing * is a prefix), operations, why.
    """
    from loupe.runtime.acls import (  # noqa: PLC0415  (keeps `loupe --help` fast)
        AclNames,
        acl_bindings,
        apply_acls,
        principals,
        service_grants,
    )

    names = AclNames()
    grants = service_grants(names)
    users = principals(user_prefix)
    for grant in grants:
        name = f"{grant.name}*" if grant.prefixed else grant.name
        operations = ",".join(grant.operations)
        click.echo(
            f"{users[grant.service]:<22} {grant.resource:<16} {name:<40} "
            f"{operations:<28} # {grant.why}"
        )
    if apply_:
        created = apply_acls(names.kafka, acl_bindings(grants, users))
        click.echo(f"applied {created} ACL bindings", err=True)
