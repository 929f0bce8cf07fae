"""``loupe router``: run one router instance (wiring only)."""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click
from confluent_kafka import KafkaException

from loupe.router.policies import PolicyBook, PolicyFileError, load_policy_dir
from loupe.router.settings import RouterSettings, get_settings
from loupe.runtime.health import HealthServer
from loupe.runtime.logs import install_repeat_limiter

log = logging.getLogger(__name__)


def load_book(settings: RouterSettings) -> PolicyBook:
    """A policy book holding the policy files of ``settings.policy_dir`` (if any)."""
    book = PolicyBook()
    if settings.policy_dir is not None:
        for policy, version, source in load_policy_dir(settings.policy_dir):
            book.offer(policy, version, source)
    return book


class ExitDeadline:
    """Exits the process a fixed time after it started stopping, unless it has ended by then:
    whatever Kafka does, a stop never outlives the orchestrator's grace period (an unfinished
    transaction is aborted by the coordinator, or fenced when the instance restarts)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._timer: threading.Timer | None = None

    def start(self) -> None:
        """Start counting (again is a no-op)."""
        if self._timer is None:
            self._timer = threading.Timer(self.seconds, self._give_up)
            self._timer.daemon = True
            self._timer.start()

    def _give_up(self) -> None:
        log.error("still stopping after %.0fs; exiting now", self.seconds)
        logging.shutdown()
        os._exit(1)


@click.command("router")
@click.option(
    "--policy-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of per-project policy files (overrides LOUPE_ROUTER_POLICY_DIR).",
)
@click.option("--instance-id", default=None, help="Overrides LOUPE_ROUTER_INSTANCE_ID.")
def router(policy_dir: Path | None, instance_id: str | None) -> None:
    """Route predictions exactly once: auto-accept, request review, or dead-letter."""
    from loupe.router.service import RouterService  # noqa: PLC0415  (keeps `loupe --help` fast)

    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    install_repeat_limiter()  # also when run as `python -m loupe.router`
    overrides: dict[str, object] = {}
    if policy_dir is not None:
        overrides["policy_dir"] = policy_dir
    if instance_id is not None:
        overrides["instance_id"] = instance_id
    settings = get_settings().model_copy(update=overrides) if overrides else get_settings()
    try:
        book = load_book(settings)
    except PolicyFileError as exc:
        raise click.ClickException(str(exc)) from None
    deadline = ExitDeadline(settings.shutdown_timeout_s)
    service = RouterService(settings, book, on_stopping=deadline.start)

    def stop(signum: int, _frame: FrameType | None) -> None:
        if service.stop_requested:
            log.warning("signal %d again: exiting now", signum)
            os._exit(1)
        log.info("signal %d: finishing the batch in flight, then stopping", signum)
        service.request_stop()
        deadline.start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1`: where is it stuck?
    health = HealthServer(settings.health_host, settings.health_port, service.health).start()
    log.info("health and metrics on http://%s:%d/", settings.health_host, health.port)
    try:
        service.run()
    except KafkaException as exc:
        log.error("router stopped on a fatal Kafka error: %s", exc)
        sys.exit(1)
    except (RuntimeError, TimeoutError) as exc:  # missing topics, unreadable state topic
        raise click.ClickException(str(exc)) from None
    finally:
        health.stop()
