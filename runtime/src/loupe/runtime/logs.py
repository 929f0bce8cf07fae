"""Repeated log lines are rate-limited: a flood of one message becomes a few lines and a count.

During a 15 s broker outage the resolver's Kafka client (aiokafka) logged 20,217 ERROR lines
(2.2 MB), almost all "Unable connect to node ..." and "Unable to update metadata ..." over and
over (issue 19, defect 8). ``RepeatLimiter`` is a ``logging.Filter`` installed on the root
logger's handlers (``install_repeat_limiter``), so it applies to every logger that propagates to
the root, the third-party client libraries included. Per message template it lets the first
``burst`` records of each ``window_s`` window through and drops the rest; once the window is
over, one line says how many were dropped ("suppressed K similar messages in the last N s: ...").

A message's template is its logger, its level and its unformatted message (``record.msg``) with
every run of digits replaced by ``#`` and cut to ``TEMPLATE_CHARS`` characters, so a message
formatted before logging (node ids, ports, offsets in the text) still counts as one.

Memory is bounded: at most ``max_templates`` templates are tracked (each at most
``TEMPLATE_CHARS`` characters plus four numbers; about 400 KB at the default 1,000). When the
table is full the template seen least recently is dropped, its pending count reported first.
Summaries of templates that went quiet are written with the next record that passes through
the limiter (checked at most once a second) and at interpreter exit.
"""

from __future__ import annotations

import atexit
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

TEMPLATE_CHARS = 200
"""Characters of a message that make up its template (longer messages share the prefix)."""
DEFAULT_BURST = 5
DEFAULT_WINDOW_S = 60.0
DEFAULT_MAX_TEMPLATES = 1_000
_SUMMARY = "_loupe_repeat_summary"
_DECIDED = "_loupe_repeat_passed"
_DIGITS = re.compile(r"\d+")

Key = tuple[str, int, str]


@dataclass
class _Window:
    started: float
    seen: int
    suppressed: int


@dataclass(frozen=True)
class _Summary:
    name: str
    level: int
    template: str
    suppressed: int
    seconds: float


class RepeatLimiter(logging.Filter):
    """Lets ``burst`` records per message template and ``window_s`` through; counts the rest.

    One instance may sit on several handlers: a record is judged once (the first handler's
    verdict is stored on the record), so a record is never counted twice.
    """

    def __init__(
        self,
        *,
        burst: int = DEFAULT_BURST,
        window_s: float = DEFAULT_WINDOW_S,
        max_templates: int = DEFAULT_MAX_TEMPLATES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if burst < 1 or window_s <= 0 or max_templates < 1:
            raise ValueError("burst and max_templates must be >= 1 and window_s > 0")
        self.burst = burst
        self.window_s = window_s
        self.max_templates = max_templates
        self.clock = clock
        self._windows: OrderedDict[Key, _Window] = OrderedDict()
        self._lock = threading.Lock()
        self._last_sweep = clock()
        self._local = threading.local()
        self.suppressed_total = 0
        """Records dropped since the limiter was created (for tests and curiosity)."""

    def __len__(self) -> int:
        """Templates currently tracked (never more than ``max_templates``)."""
        return len(self._windows)

    @staticmethod
    def template(record: logging.LogRecord) -> Key:
        """The key records are counted under: logger, level, digit-free message prefix."""
        text = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        return (
            record.name,
            record.levelno,
            _DIGITS.sub("#", text[: TEMPLATE_CHARS * 2])[:TEMPLATE_CHARS],
        )

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _SUMMARY, False) or getattr(self._local, "busy", False):
            return True
        verdict = getattr(record, _DECIDED, None)
        if verdict is not None:
            return bool(verdict)
        now = self.clock()
        key = self.template(record)
        with self._lock:
            due = self._judge(key, now)
            passed = due[0]
            summaries = due[1]
        record.__dict__[_DECIDED] = passed
        if summaries:
            self.emit_summaries(summaries)
        return passed

    def _judge(self, key: Key, now: float) -> tuple[bool, list[_Summary]]:
        summaries: list[_Summary] = []
        window = self._windows.get(key)
        if window is not None and now - window.started >= self.window_s:
            if window.suppressed:
                summaries.append(self._summary(key, window, now))
            window = None
        if window is None:
            window = _Window(started=now, seen=0, suppressed=0)
            self._windows[key] = window
        self._windows.move_to_end(key)
        window.seen += 1
        passed = window.seen <= self.burst
        if not passed:
            window.suppressed += 1
            self.suppressed_total += 1
        while len(self._windows) > self.max_templates:
            old_key, old = self._windows.popitem(last=False)
            if old.suppressed:
                summaries.append(self._summary(old_key, old, now))
        if now - self._last_sweep >= 1.0:
            self._last_sweep = now
            summaries.extend(self._sweep(now))
        return passed, summaries

    def _summary(self, key: Key, window: _Window, now: float) -> _Summary:
        seconds = min(now - window.started, self.window_s)
        return _Summary(key[0], key[1], key[2], window.suppressed, seconds)

    def _sweep(self, now: float) -> list[_Summary]:
        """Summaries of windows that are over, and forget those windows."""
        over = [k for k, w in self._windows.items() if now - w.started >= self.window_s]
        summaries = []
        for key in over:
            window = self._windows.pop(key)
            if window.suppressed:
                summaries.append(self._summary(key, window, now))
        return summaries

    def flush(self) -> None:
        """Write the summaries of every pending count now (e.g. at exit)."""
        with self._lock:
            summaries = [
                self._summary(k, w, self.clock()) for k, w in self._windows.items() if w.suppressed
            ]
            for window in self._windows.values():
                window.suppressed = 0
        self.emit_summaries(summaries)

    def reset(self) -> None:
        """Write the pending counts, then start every template afresh (a new burst each)."""
        self.flush()
        with self._lock:
            self._windows.clear()

    def emit_summaries(self, summaries: list[_Summary]) -> None:
        """Log one line per summary through the logger the suppressed records came from."""
        self._local.busy = True
        try:
            for s in summaries:
                logging.getLogger(s.name).log(
                    s.level,
                    "suppressed %d similar messages in the last %.0f s: %s",
                    s.suppressed,
                    s.seconds,
                    s.template,
                    extra={_SUMMARY: True},
                )
        finally:
            self._local.busy = False


_installed: RepeatLimiter | None = None
_install_lock = threading.Lock()


def process_repeat_limiter() -> RepeatLimiter:
    """The process's one ``RepeatLimiter`` (created with the defaults on first use), for a
    logger that must be limited before any handler exists (a module-level ``log.addFilter``):
    the record's verdict is stored on it, so the same limiter on the handlers counts it once."""
    global _installed  # noqa: PLW0603  (one limiter per process, shared by its handlers)
    with _install_lock:
        if _installed is None:
            _installed = RepeatLimiter()
            atexit.register(_installed.flush)
        return _installed


def install_repeat_limiter(
    *,
    burst: int = DEFAULT_BURST,
    window_s: float = DEFAULT_WINDOW_S,
    max_templates: int = DEFAULT_MAX_TEMPLATES,
) -> RepeatLimiter:
    """Put the process's one ``RepeatLimiter`` on every handler of the root logger.

    Call it after logging is configured (and again after anything replaces the root handlers:
    Faust does, see the resolver's worker); handlers that already have it are left alone. The
    first call's parameters win (``process_repeat_limiter`` counts as a call with the defaults).
    Pending counts are written at interpreter exit.
    """
    global _installed  # noqa: PLW0603  (one limiter per process, shared by its handlers)
    with _install_lock:
        if _installed is None:
            _installed = RepeatLimiter(burst=burst, window_s=window_s, max_templates=max_templates)
            atexit.register(_installed.flush)
        limiter = _installed
    for handler in logging.getLogger().handlers:
        if limiter not in handler.filters:
            handler.addFilter(limiter)
    return limiter
