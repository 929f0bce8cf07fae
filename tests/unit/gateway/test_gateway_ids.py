"""Random ids: uuid4-shaped hex, unique, and never shared with a forked child."""

from __future__ import annotations

import os
import re

from loupe.gateway.ids import new_id


def test_ids_are_128_bit_lowercase_hex_and_unique() -> None:
    ids = [new_id() for _ in range(5_000)]  # spans many buffer refills
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_draws_fresh_bytes_not_the_parents_buffer() -> None:
    new_id()  # the parent now holds a partly used buffer
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its next id, then leave without running pytest's teardown
        os.write(write_end, new_id().encode())
        os._exit(0)
    os.close(write_end)
    child_id = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    parent_next = new_id()
    assert re.fullmatch(r"[0-9a-f]{32}", child_id)
    assert child_id != parent_next
