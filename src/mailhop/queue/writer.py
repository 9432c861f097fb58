"""Writing decisions to the store: outcomes of one turn of the event loop share one operation.

Delivery results arrive one job at a time; ``add`` gathers their batches and writes
them together at the end of the loop's turn (one store operation, so one commit in
the group commit), then reports the jobs as finished (``on_done``).  A failed write
(the store unreachable or its disk full) is kept and written again, 1 s later and then
at doubling intervals up to ``RETRY_MAX``, until it is stored; its jobs count as in flight
meanwhile, so claiming slows down with it.  Dropping it would be worse both ways: the
heartbeat keeps this worker's leases alive, so its recipients would stay ``Active``
for ever, and those already delivered would be delivered again.  ``spawn`` runs other
store updates (queue states), logging a failure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from mailhop.clock import SYSTEM_CLOCK, Clock
from mailhop.errors import MailhopError
from mailhop.model.message import RecordBatch
from mailhop.store.base import Messages

log = logging.getLogger(__name__)
RETRY_FIRST = 1.0
RETRY_MAX = 15.0


class OutcomeWriter:
    def __init__(self, messages: Messages, owner: str, on_done: Callable[[int, bool, list[int]], None],
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.messages = messages
        self.clock = clock
        self.owner = owner  # outcomes apply only where this worker still holds the lease
        self.on_done = on_done  # (jobs finished, whether new messages were written, recipients recorded)
        self._tasks: set[asyncio.Task[None]] = set()
        self._acc = RecordBatch()
        self._acc_jobs = 0
        self._scheduled = False

    def add(self, batch: RecordBatch, jobs: int) -> None:
        acc = self._acc
        acc.outcomes += batch.outcomes
        acc.new_messages += batch.new_messages
        acc.delay_notified += batch.delay_notified
        self._acc_jobs += jobs
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        batch, jobs = self._acc, self._acc_jobs
        self._acc, self._acc_jobs = RecordBatch(), 0
        if batch.outcomes or batch.new_messages or batch.delay_notified or jobs:
            self.spawn(self.write(batch, jobs))

    async def write(self, batch: RecordBatch, jobs: int) -> None:
        batch.owner = self.owner
        delay = RETRY_FIRST
        try:
            while batch.outcomes or batch.new_messages or batch.delay_notified:
                try:
                    await self.messages.record(batch)
                    break
                except MailhopError as exc:
                    log.error("recording %d delivery outcome(s) failed, trying again in %.0f s: %s",
                              len(batch.outcomes), delay, exc)
                batch.again = True
                await self.clock.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
        finally:
            self.on_done(jobs, bool(batch.new_messages), [o.recipient_id for o in batch.outcomes])

    def spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await coro
            except MailhopError as exc:
                log.error("store update failed: %s", exc)

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float) -> None:
        """Write what is gathered and wait for every write in flight (at most ``timeout``).

        A task may gather more as it ends (an NDR composed, then its batch added), so this
        flushes and waits until nothing is left.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self.flush()
            if not self._tasks or loop.time() >= deadline:
                return
            await asyncio.wait(list(self._tasks), timeout=deadline - loop.time())
