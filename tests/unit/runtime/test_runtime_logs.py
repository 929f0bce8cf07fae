"""Repeated log lines are rate-limited (issue 19, defect 8: 20,217 ERROR lines in a 15 s outage)."""

from __future__ import annotations

import logging
import sys
import tracemalloc
from collections.abc import Iterator

import pytest

from loupe.runtime import logs
from loupe.runtime.logs import RepeatLimiter, install_repeat_limiter


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def wired(clock: Clock) -> Iterator[tuple[logging.Logger, Lines, RepeatLimiter]]:
    """A private logger tree (like aiokafka's) whose records reach a handler with the limiter."""
    parent = logging.getLogger("limiter-test")
    parent.propagate = False
    parent.setLevel(logging.DEBUG)
    handler = Lines()
    limiter = RepeatLimiter(burst=5, window_s=60.0, max_templates=50, clock=clock)
    handler.addFilter(limiter)
    parent.addHandler(handler)
    try:
        yield parent, handler, limiter
    finally:
        parent.removeHandler(handler)


def test_20000_identical_errors_become_the_burst_and_one_summary(
    wired: tuple[logging.Logger, Lines, RepeatLimiter], clock: Clock
) -> None:
    _, handler, limiter = wired
    client = logging.getLogger("limiter-test.aiokafka.conn")  # a child logger, as a library's
    for n in range(20_000):
        clock.now += 0.00075  # 20,000 records in 15 s
        client.error("Unable connect to node with id %s: %s", 1, f"[Errno 111] attempt {n}")
    assert len(handler.lines) == 5
    assert limiter.suppressed_total == 19_995
    limiter.flush()
    assert len(handler.lines) == 6
    assert handler.lines[-1].startswith(
        "ERROR limiter-test.aiokafka.conn: suppressed 19995 similar messages in the last 15 s: "
        "Unable connect to node with id %s: %s"
    )


def test_distinct_messages_still_pass(wired: tuple[logging.Logger, Lines, RepeatLimiter]) -> None:
    parent, handler, limiter = wired
    for n in range(40):
        parent.warning(f"message number {'abcdefghijklmnopqrstuvwxyz'[n % 26]}{n // 26}")
    for level in (logging.INFO, logging.WARNING, logging.ERROR):
        parent.log(level, "same text, other level")
    logging.getLogger("limiter-test.other").warning("same text, other level")
    assert len(handler.lines) == 44 and limiter.suppressed_total == 0


def test_messages_formatted_before_logging_count_as_one_template(
    wired: tuple[logging.Logger, Lines, RepeatLimiter],
) -> None:
    parent, handler, _ = wired
    for port in range(1_000):
        parent.error(f"Connect call failed ('127.0.0.1', {40_000 + port})")
    assert len(handler.lines) == 5


def test_a_new_window_reports_the_last_one_and_lets_the_burst_through_again(
    wired: tuple[logging.Logger, Lines, RepeatLimiter], clock: Clock
) -> None:
    parent, handler, _ = wired
    for _ in range(100):
        parent.error("broker down")
    clock.now += 61.0
    parent.error("broker down")
    assert handler.lines[5:] == [
        "ERROR limiter-test: suppressed 95 similar messages in the last 60 s: broker down",
        "ERROR limiter-test: broker down",
    ]


def test_a_template_that_went_quiet_is_reported_with_the_next_record(
    wired: tuple[logging.Logger, Lines, RepeatLimiter], clock: Clock
) -> None:
    parent, handler, _ = wired
    for _ in range(10):
        parent.error("flood")
    clock.now += 61.0
    parent.info("something else entirely")
    assert handler.lines[-2:] == [
        "ERROR limiter-test: suppressed 5 similar messages in the last 60 s: flood",
        "INFO limiter-test: something else entirely",
    ]


def test_state_is_bounded_by_max_templates(
    wired: tuple[logging.Logger, Lines, RepeatLimiter],
) -> None:
    """50 templates at most here (1,000 by default: under 1 MB, see the module docstring)."""
    parent, handler, limiter = wired
    for n in range(5_000):
        parent.warning("".join(chr(97 + int(d)) for d in str(n)) + " " + "x" * 10_000)
        assert len(limiter) <= 50
    assert all(len(key[2]) <= logs.TEMPLATE_CHARS for key in limiter._windows)
    assert len(handler.lines) == 5_000  # every template was new: nothing suppressed


def test_memory_of_the_default_limiter_stays_under_a_megabyte() -> None:
    limiter = RepeatLimiter()
    logger = logging.getLogger("limiter-memory")
    logger.propagate = False
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(20_000):
            record = logger.makeRecord(
                logger.name,
                logging.ERROR,
                __file__,
                1,
                "y" * 500 + hex(n)[2:].replace("0", "z"),
                None,
                None,
            )
            limiter.filter(record)
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(limiter) <= logs.DEFAULT_MAX_TEMPLATES
    assert used < 1_000_000, used


def test_one_limiter_on_two_handlers_counts_each_record_once(clock: Clock) -> None:
    logger = logging.getLogger("limiter-two-handlers")
    logger.propagate = False
    limiter = RepeatLimiter(burst=3, clock=clock)
    first, second = Lines(), Lines()
    for handler in (first, second):
        handler.addFilter(limiter)
        logger.addHandler(handler)
    for _ in range(10):
        logger.error("again")
    assert len(first.lines) == len(second.lines) == 3
    assert limiter.suppressed_total == 7


def test_install_puts_one_limiter_on_every_root_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    handlers = [logging.StreamHandler(sys.stderr), logging.NullHandler()]
    monkeypatch.setattr(root, "handlers", handlers)
    monkeypatch.setattr(logs, "_installed", None)
    monkeypatch.setattr(logs.atexit, "register", lambda _f: None)
    limiter = install_repeat_limiter()
    assert install_repeat_limiter() is limiter  # idempotent
    assert all(h.filters.count(limiter) == 1 for h in handlers)


def test_reset_writes_the_pending_counts_and_starts_every_template_afresh(caplog) -> None:
    limiter = RepeatLimiter(burst=1, window_s=3_600)
    logger = logging.getLogger("loupe.test.reset")
    logger.addFilter(limiter)
    try:
        with caplog.at_level(logging.WARNING, logger="loupe.test.reset"):
            for _ in range(3):
                logger.warning("the same line")
            limiter.reset()
            logger.warning("the same line")
        messages = [r.getMessage() for r in caplog.records]
        assert messages[0] == "the same line"
        assert messages[1].startswith("suppressed 2 similar messages")
        assert messages[2:] == ["the same line"]  # a new burst after the reset
    finally:
        logger.removeFilter(limiter)
