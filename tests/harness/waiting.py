"""Polling for eventually-true conditions in tests that run real services."""

from __future__ import annotations

import time

import pytest

_TRUTHY = object()


def wait_for(check, timeout_s: float, what: str, interval_s: float = 0.5, expect=_TRUTHY):
    """Poll ``check()`` until it returns something truthy (or equal to ``expect``, if given).

    Fails with ``what`` and the last value seen after the timeout.
    """
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if (last == expect) if expect is not _TRUTHY else last:
            return last
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")
