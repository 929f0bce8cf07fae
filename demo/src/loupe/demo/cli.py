"""``loupe demo``: the whole loop on a real model, with simulated reviewers and a report."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import click

QUICK = {"rate": 100.0, "time_scale": 0.01}
"""``--quick``: the same fixed-seed stream, streamed and reviewed much faster."""


@click.command("demo")
@click.option(
    "--items",
    type=click.IntRange(70, 700),
    default=700,
    show_default=True,
    help="Predictions to stream (the digits dataset bounds it).",
)
@click.option(
    "--rate",
    type=click.FloatRange(0.5, 10_000),
    default=15.0,
    show_default=True,
    help="Predictions per second from model serving.",
)
@click.option(
    "--reviewers",
    type=click.IntRange(3, 50),
    default=6,
    show_default=True,
    help="Simulated reviewers (always incl. one careless, one senior, one lead).",
)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--quick", is_flag=True, help="Fast fixed-seed run (same stream, compressed time).")
@click.option("--json", "as_json", is_flag=True, help="Print only one JSON object at the end.")
@click.option(
    "--keep-running",
    is_flag=True,
    help="After the report, keep everything up until Ctrl-C (to explore the UI).",
)
@click.option(
    "--infra",
    type=click.Choice(["local", "env"]),
    default="local",
    show_default=True,
    help="local: start a private Kafka + Redis; env: use LOUPE_KAFKA_BOOTSTRAP_SERVERS"
    " / LOUPE_REDIS_URL (or KAFKA_BOOTSTRAP_SERVERS / REDIS_URL).",
)
@click.option(
    "--secure",
    is_flag=True,
    help="With --infra local: secure the stack (Kafka SASL_SSL with ACLs, each service as its"
    " own Kafka user with only its grants; Redis over TLS with a password).",
)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".loupe/demo"),
    show_default=True,
    envvar="LOUPE_DEMO_HOME",
    help="Folder for each run's logs and state.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(10, 86_400),
    default=900.0,
    show_default=True,
    help="Give up waiting for the loop to settle after this long.",
)
def demo(
    *,
    items: int,
    rate: float,
    reviewers: int,
    seed: int,
    quick: bool,
    as_json: bool,
    keep_running: bool,
    infra: str,
    secure: bool,
    home: Path,
    timeout_s: float,
) -> None:
    """Run Loupe end to end on the digits dataset and report what the loop achieved."""
    from loupe.demo.report import render_text  # noqa: PLC0415  (keeps `loupe --help` fast)
    from loupe.demo.run import DemoConfig, echo_to, run_demo  # noqa: PLC0415

    if secure and infra != "local":
        raise click.UsageError(
            "--secure secures the demo's own stack (--infra local); with --infra env the"
            " LOUPE_KAFKA_* / LOUPE_REDIS_* variables say how to connect securely"
        )
    config = DemoConfig(
        items=items,
        rate=QUICK["rate"] if quick else rate,
        time_scale=QUICK["time_scale"] if quick else 0.1,
        reviewers=reviewers,
        seed=seed,
        infra=infra,
        secure=secure,
        home=home,
        timeout_s=timeout_s,
        keep_running=keep_running,
    )
    started = time.monotonic()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    printer = echo_to(sys.stderr if as_json else sys.stdout)
    try:
        result = run_demo(
            config, printer, on_report=None if as_json else lambda r: click.echo(render_text(r))
        )
    except Exception as exc:
        raise click.ClickException(f"demo failed: {exc}") from exc
    payload = {
        **result.report.as_dict(),
        "completed": result.completed,
        "total_s": round(time.monotonic() - started, 1),
        "run_dir": str(result.run_dir),
        "endpoints": result.endpoints,
        "service_exit_codes": result.exit_codes,
    }
    (result.run_dir / "report.json").write_text(json.dumps(payload, indent=2))
    if as_json:
        click.echo(json.dumps(payload))
    else:
        click.echo(f"logs and state: {result.run_dir}")
    if not result.completed:
        sys.exit(1)
