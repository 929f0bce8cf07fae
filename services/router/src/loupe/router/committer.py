"""The helper thread that commits the router's transactions while the next batch is routed."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

_Job = tuple[Future[None], Callable[..., None], tuple[Any, ...]]


class Committer:
    """Runs submitted commits one at a time on a daemon thread.

    A daemon, unlike a ``ThreadPoolExecutor`` worker (joined at interpreter exit), so that a
    commit stuck inside librdkafka can be abandoned and never keeps the process from exiting.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        threading.Thread(target=self._work, name="router-commit", daemon=True).start()

    def submit(self, commit: Callable[..., None], *args: Any) -> Future[None]:
        """Queue ``commit(*args)``; its future holds the outcome."""
        future: Future[None] = Future()
        self._jobs.put((future, commit, args))
        return future

    def shutdown(self) -> None:
        """Let the thread end after what it is running (it is not waited for)."""
        self._jobs.put(None)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, commit, args = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                commit(*args)
            except BaseException as exc:  # handed to whoever waits on the future
                future.set_exception(exc)
            else:
                future.set_result(None)
