"""Read timeouts with one timer per task instead of one per read.

``asyncio.timeout`` (and ``wait_for``, which in Python 3.11 even makes a task) around
every read of an SMTP session allocated a context manager and a timer handle per
command; under load that was about 5% of the server's CPU (docs/performance.md).
``ReadTimer`` keeps one timer per session: a read sets a deadline, and the timer, when
it fires, cancels the task only if a read is still waiting past its deadline (otherwise
it sleeps again until the current deadline).  The cancellation is turned back into a
``TimeoutError`` at the read, so callers see what ``asyncio.timeout`` raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from mailhop.clock import SYSTEM_CLOCK, Clock, Timer

T = TypeVar("T")


class ReadTimer:
    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self._task: asyncio.Task[object] | None = None
        self._deadline: float | None = None  # of the read waiting now; None when none is
        self._handle: Timer | None = None
        self._when = 0.0  # the instant the handle fires at
        self._fired = False

    async def run(self, awaitable: Awaitable[T], timeout: float) -> T:
        """Await ``awaitable``; TimeoutError when it takes longer than ``timeout`` seconds."""
        task = asyncio.current_task()
        assert task is not None
        if task is not self._task:
            self.close()
            self._task = task
        deadline = self._deadline = self.clock.now() + timeout
        if self._handle is not None and self._when > deadline:
            self._handle.cancel()
            self._handle = None
        if self._handle is None:
            self._when = deadline
            self._handle = self.clock.call_at(deadline, self._check)
        try:
            return await awaitable
        except asyncio.CancelledError:
            if not self._fired:
                raise
            self._fired = False
            task.uncancel()  # our own cancellation: a timeout, not a cancelled task
            raise TimeoutError from None
        finally:
            self._deadline = None

    def _check(self) -> None:
        self._handle = None
        if self._deadline is None or self._task is None:
            return
        if self.clock.now() >= self._deadline:
            self._fired = True
            self._task.cancel()
        else:
            self._when = self._deadline
            self._handle = self.clock.call_at(self._deadline, self._check)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
