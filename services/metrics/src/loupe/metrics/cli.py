"""``loupe metrics``: run the metrics service (wiring only)."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import click

log = logging.getLogger(__name__)


@click.group(invoke_without_command=True)
@click.pass_context
def metrics(ctx: click.Context) -> None:
    """Review quality, flow and cost to Prometheus; adaptive review policy."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(run)


@metrics.command()
def run() -> None:
    """Replay Loupe's topics, serve /metrics and /healthz, and adapt review policies."""
    from loupe.metrics.service import MetricsService  # noqa: PLC0415  (keeps --help fast)
    from loupe.metrics.settings import get_settings  # noqa: PLC0415
    from loupe.runtime.health import HealthServer  # noqa: PLC0415
    from loupe.runtime.kafka import KafkaAccessError  # noqa: PLC0415

    settings = get_settings()
    service = MetricsService(settings)
    server = HealthServer(
        settings.metrics_host, settings.metrics_port, service.health, service.registry
    ).start()
    log.info("metrics on http://%s:%d/metrics", settings.metrics_host, server.port)
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        service.run(stop)
    except KafkaAccessError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        server.stop()


@metrics.command()
@click.option("--count", type=click.IntRange(10, 100_000), default=1_000, show_default=True)
@click.option(
    "--verify",
    "verify_url",
    default=None,
    help="A metrics service's /metrics URL to check against the expected numbers afterwards.",
)
@click.option("--timeout", type=click.FloatRange(1, 3_600), default=120.0, show_default=True)
def scenario(count: int, verify_url: str | None, timeout: float) -> None:
    """Publish the scripted run (project 'scripted') and optionally verify the exported numbers.

    For smoke tests of a fresh deployment or topic prefix: running it twice doubles counters.
    """
    from loupe.metrics.scenario import build  # noqa: PLC0415
    from loupe.metrics.settings import get_settings  # noqa: PLC0415
    from loupe.metrics.smoke import publish_scenario, verify  # noqa: PLC0415

    settings = get_settings()
    run = build(count)
    published = publish_scenario(settings, run, verify_url, timeout)
    click.echo(f"published {published} records to prefix {settings.topic_prefix!r}")
    if verify_url is None:
        return
    problems = verify(verify_url, run.expected, timeout)
    if problems:
        raise click.ClickException("metrics differ:\n" + "\n".join(problems))
    click.echo("all expected numbers match")
