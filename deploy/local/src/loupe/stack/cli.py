"""``loupe stack up|down|status|install``: the local stack from the command line."""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

import click

from loupe.runtime.acls import Service, user_name
from loupe.stack.errors import StackError
from loupe.stack.models import ComponentStatus
from loupe.stack.settings import get_settings
from loupe.stack.stack import LocalStack

P = ParamSpec("P")
R = TypeVar("R")


def _friendly_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Show StackError as a one-paragraph message and exit 1, without a traceback."""

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except StackError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


def _table(statuses: list[ComponentStatus]) -> str:
    """A fixed-width table of component statuses."""
    rows = [("COMPONENT", "STATE", "PID", "ADDRESS", "VERSION")] + [
        (s.name, s.state.value, str(s.pid or "-"), s.address, s.version or "-") for s in statuses
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


@click.group(name="stack")
def stack() -> None:
    """Run the local embedded stack: Apache Kafka (KRaft, from Maven Central) and redis-server.

    Settings come from LOUPE_STACK_* environment variables (state dir, ports, Kafka version).
    """


@stack.command()
@click.option("--json", "as_json", is_flag=True, help="Print the connection details as JSON.")
@click.option(
    "--secure",
    is_flag=True,
    help="Kafka on SASL_SSL (SCRAM-SHA-512) and Redis on TLS with a password, with a throwaway "
    "CA (same as LOUPE_STACK_SECURE=1; a secured state folder stays secured until purged).",
)
@_friendly_errors
def up(as_json: bool, secure: bool) -> None:
    """Start Kafka and Redis (if not running), wait until ready, create the Loupe topics."""
    started = time.monotonic()
    settings = get_settings()
    if secure:
        settings = settings.model_copy(update={"secure": True})
    info = LocalStack(settings).up()
    if as_json:
        click.echo(json.dumps(info.as_dict(), indent=2))
        return
    click.echo(
        f"Apache Kafka {info.kafka_version} at {info.kafka_bootstrap} (pid {info.kafka_pid})"
    )
    click.echo(f"Redis {info.redis_version} at {info.redis_url} (pid {info.redis_pid})")
    click.echo(
        f"{len(info.topics)} Loupe topics ready; state in {info.state_dir} "
        f"({time.monotonic() - started:.1f}s)"
    )
    click.echo("Point Loupe services at it with:")
    if info.env_file is not None:  # secured: the variables hold passwords, so not printed
        click.echo(f"  set -a; . {shlex.quote(str(info.env_file))}; set +a")
        click.echo("or run each service as its own Kafka user, with only its grants:")
        for service in Service:
            own = info.env_file.with_name(f"{user_name(service)}.env")
            click.echo(f"  {service.value}: set -a; . {shlex.quote(str(own))}; set +a")
        return
    for name, value in info.env().items():
        click.echo(f"  export {name}={value}")


@stack.command()
@click.option("--purge", is_flag=True, help="Also delete the stack's Kafka and Redis data.")
@_friendly_errors
def down(purge: bool) -> None:
    """Stop the Kafka broker and redis-server this stack started (nothing else)."""
    for status in LocalStack().down(purge=purge):
        action = f"stopped (pid {status.pid})" if status.pid else "was not running"
        click.echo(f"{status.name}: {action}")
    if purge:
        click.echo("data deleted")


@stack.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@_friendly_errors
def status(as_json: bool) -> None:
    """Show each component's state, pid, address and version; exit 1 unless all are running."""
    statuses = LocalStack().status()
    if as_json:
        click.echo(json.dumps([s.as_dict() for s in statuses], indent=2))
    else:
        click.echo(_table(statuses))
    if not all(s.running for s in statuses):
        sys.exit(1)


@stack.command()
@click.option(
    "--no-system",
    is_flag=True,
    help="Skip system packages; only check Java and Maven and fetch the Kafka jars.",
)
@_friendly_errors
def install(no_system: bool) -> None:
    """Install everything the stack, tests and demo need, and fetch the Kafka jars.

    Missing system packages (Java, Maven, redis-server, kcat, prometheus, chromium) are
    installed with apt-get when running as root; otherwise the command says what to install.
    """
    local_stack = LocalStack()
    local_stack.install(system_packages=not no_system)
    click.echo(
        f"ready: Apache Kafka {local_stack.settings.kafka_version} jars in "
        f"{local_stack.settings.kafka_jar_dir}"
    )
