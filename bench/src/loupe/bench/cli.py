"""``loupe bench <name>``: benchmarks load lazily so one missing extra never breaks the others."""

from __future__ import annotations

import importlib

import click

BENCHMARKS = {
    "router": "loupe.bench.router",
    "router-state": "loupe.bench.router_state",
    "gateway": "loupe.bench.gateway",
    "gateway-memory": "loupe.bench.gateway_memory",
    "resolver": "loupe.bench.resolver",
    "rebuild": "loupe.bench.rebuild",
    "claims": "loupe.bench.claims",
}


class _LazyBenchGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(BENCHMARKS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = BENCHMARKS.get(cmd_name)
        if module_name is None:
            return None
        command = importlib.import_module(module_name).command
        if not isinstance(command, click.Command):
            raise click.ClickException(f"{module_name}.command is not a click command")
        return command


@click.group(cls=_LazyBenchGroup)
def bench() -> None:
    """Benchmarks against real Kafka/Redis; each prints one JSON object with same-run ratios."""
