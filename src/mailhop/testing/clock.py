"""A virtual clock: time moves only when a test says so.

``advance(seconds)`` walks the virtual time forward timer by timer: it sets ``now()``
to each due timer's instant, runs it, and lets the tasks it wakes run until the
loop is quiet before the next one, so code sleeping in a loop sees every instant it
asked for, in order.  Nothing waits on the wall clock, so a test of a five-minute
retry runs in microseconds and can never lose a race against the machine's load.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

START = 1_900_000_000.0  # 2030-03-17: far from the epoch, so ids and dates look real


@dataclass(order=True)
class _Timer:
    when: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock:
    def __init__(self, start: float = START) -> None:
        self._now = start
        self._timers: list[_Timer] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(when, next(self._seq), callback)
        heapq.heappush(self._timers, timer)
        return timer

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not waiter.done():
                waiter.set_result(None)

        timer = self.call_at(self._now + seconds, wake)
        try:
            await waiter
        finally:
            timer.cancel()

    @property
    def next_timer(self) -> float | None:
        """The instant of the next live timer (None when nothing waits on this clock)."""
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0].when if self._timers else None

    async def advance(self, seconds: float) -> None:
        """Move ``seconds`` forward, running every timer that comes due on the way."""
        target = self._now + seconds
        await settle()
        while (when := self.next_timer) is not None and when <= target:
            timer = heapq.heappop(self._timers)
            self._now = max(self._now, timer.when)
            timer.callback()
            await settle()
        self._now = target
        await settle()

    async def run_until(self, condition: Callable[[], bool], limit: float = 86400.0, what: str = "a condition") -> None:
        """Advance timer by timer until ``condition()`` holds; AssertionError after ``limit`` virtual seconds."""
        deadline = self._now + limit
        await settle()
        while not condition():
            when = self.next_timer
            if when is None or when > deadline:
                raise AssertionError(f"{what} did not happen within {limit} virtual seconds")
            await self.advance(max(0.0, when - self._now))


async def settle(turns: int = 50) -> None:
    """Let every task that can run, run (the in-memory fakes never block on I/O)."""
    for _ in range(turns):
        await asyncio.sleep(0)
