"""Ids of messages and recipients: 63-bit integers, unique across a server's workers, ordered by time.

41 bits of milliseconds since 2020 (read from the injected clock), 18 bits of a counter
that starts at a random value in each generator, 4 bits of the worker index.  Servers
sharing a store can collide only within one millisecond on the same counter value; the
store's primary key refuses such an id and the client is asked to try again (451).
The millisecond part is what servers of a cluster split due mail by (store claims).
"""

from __future__ import annotations

import itertools
import os

from mailhop.clock import Clock

_EPOCH_MS = 1_577_836_800_000  # 2020-01-01
ID_TIME_SHIFT = 22  # id >> 22 is the millisecond the id was made in


class IdGenerator:
    """Make one per process after it forked (each worker of a server has its own ``worker`` tag)."""

    def __init__(self, clock: Clock, worker: int = 0) -> None:
        self.clock = clock
        self.tag = worker & 0xF
        self._counter = itertools.count(int.from_bytes(os.urandom(3), "big"))

    def __call__(self) -> int:
        ms = int(self.clock.now() * 1000) - _EPOCH_MS
        return (ms << ID_TIME_SHIFT) | ((next(self._counter) & 0x3FFFF) << 4) | self.tag
