"""Time as mailhop reads it: the one ``Clock`` every part is handed (DESIGN rule 11).

``now()`` is wall-clock time in seconds since the epoch: what the store keeps (next
attempts, leases, expiry), what servers of a cluster compare (their clocks are kept
in step by NTP), and what logs print.  ``sleep`` waits, ``call_at`` calls back at a
``now()`` instant; both run on the running asyncio loop.

Contract (tests/contract/test_clock.py runs it against ``SystemClock`` and the
virtual clock of ``mailhop.testing``):
- ``now()`` never goes backwards within one process while nothing sets it;
- ``sleep(s)`` returns once ``now()`` has passed the instant it was asked for;
  ``sleep(0)`` and negative durations only yield to the loop;
- a ``call_at`` callback runs once, at or after its instant, in instant order with
  the other timers, and never after its timer was cancelled.

Nothing here raises on its own; a callback's exception goes to the loop's handler.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...
    def call_at(self, when: float, callback: Callable[[], None]) -> Timer: ...


class SystemClock:
    """The real clock: ``time.time`` and the running loop's timers."""

    @staticmethod
    def now() -> float:
        return time.time()

    @staticmethod
    async def sleep(seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    @staticmethod
    def call_at(when: float, callback: Callable[[], None]) -> Timer:
        # The loop's own clock is monotonic; a wall-clock instant becomes a delay from now.
        return asyncio.get_running_loop().call_later(max(0.0, when - time.time()), callback)


SYSTEM_CLOCK: Clock = SystemClock()


class Wakeup:
    """A flag one task sleeps on, until it is set or a timeout of a ``Clock`` passes.

    ``asyncio.Event`` plus ``wait_for`` made a task per wait (Python 3.11) and ran on
    the loop's clock; this is one future and one timer per wait, on the given clock.
    """

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._set = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self, clock: Clock, timeout: float) -> bool:
        """True when set (now or within ``timeout`` seconds), False when the time ran out."""
        if self._set:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiter = waiter

        def expire() -> None:
            if not waiter.done():
                waiter.set_result(None)

        timer = clock.call_at(clock.now() + timeout, expire)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        return self._set
