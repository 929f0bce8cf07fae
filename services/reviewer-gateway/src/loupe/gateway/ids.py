"""Random identifiers (event, lease and comment ids) without a system call per id."""

from __future__ import annotations

import os
import threading

_ID_BYTES = 16
_IDS_PER_REFILL = 256


class _RandomIds:
    """128-bit ids as 32 hex characters, cut from a buffer of ``os.urandom`` bytes.

    ``uuid.uuid4()`` costs a ``getrandom`` call and a pure-Python UUID object per id, a visible
    share of a claim + decision cycle; this reads the kernel's CSPRNG once per 256 ids.
    """

    def __init__(self) -> None:
        self._reset()
        # a forked child must neither reuse the parent's bytes nor inherit a held lock
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._offset = 0

    def next(self) -> str:
        with self._lock:
            if self._offset >= len(self._buffer):
                self._buffer = os.urandom(_ID_BYTES * _IDS_PER_REFILL)
                self._offset = 0
            start = self._offset
            self._offset = start + _ID_BYTES
            return self._buffer[start : start + _ID_BYTES].hex()


_ids = _RandomIds()


def new_id() -> str:
    """A fresh random 128-bit id (32 lowercase hex characters, like ``uuid4().hex``)."""
    return _ids.next()
