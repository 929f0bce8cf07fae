"""``loupe router``: run one router instance (wiring only)."""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

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
        # straight to stderr: a logging handler's lock may be held by the stuck thread
        os.write(2, f"router still stopping after {self.seconds:.0f}s; exiting now\n".encode())
        os._exit(1)


class StopSignals:
    """SIGTERM and SIGINT, acted on by a thread of their own.

    A Python signal handler runs only when the main thread comes back from C code, and the
    router's main thread waits inside librdkafka (up to ``kafka_timeout_s`` a call). The C-level
    handler, though, writes each signal's number to the wakeup fd at once, from whichever thread
    the kernel picked: a thread that reads that pipe acts on the signal without delay.
    """

    SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})

    def handle(self, stop: Callable[[int], None]) -> None:
        """Call ``stop(signum)`` on the signal thread for every SIGTERM or SIGINT."""
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        for signum in self.SIGNALS:
            signal.signal(signum, lambda *_: None)  # the byte in the pipe does the work

        def wait() -> None:
            while True:
                for signum in os.read(read_fd, 16):
                    if signum in self.SIGNALS:
                        stop(signum)

        threading.Thread(target=wait, name="router-signals", daemon=True).start()


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

    def stop(signum: int) -> None:
        if service.stop_requested:
            os.write(2, f"router: signal {signum} again, exiting now\n".encode())
            os._exit(1)
        log.info("signal %d: finishing the batch in flight, then stopping", signum)
        service.request_stop()
        deadline.start()

    StopSignals().handle(stop)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1`: where is it stuck?
    health = HealthServer(settings.health_host, settings.health_port, service.health).start()
    log.info("health and metrics on http://%s:%d/", settings.health_host, health.port)
    try:
        service.run()
    except KafkaException as exc:
        log.error("router stopped on a fatal Kafka error: %s", exc)
        sys.exit(1)
    except (RuntimeError, TimeoutError) as exc:  # refused, missing topics, unreadable state
        raise click.ClickException(str(exc)) from None
    finally:
        health.stop()
