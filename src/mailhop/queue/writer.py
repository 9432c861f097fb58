"""Writing decisions to the store: outcomes of one turn of the event loop share one operation.

Delivery results arrive one job at a time; ``add`` gathers their batches and writes
them together at the end of the loop's turn (one store operation, so one commit in
the group commit), then reports the jobs as finished (``on_done``).  A failed write
is logged and the leases expire: the recipients are tried again, at least once and
never lost.  ``spawn`` runs other store updates (queue states) the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from mailhop.errors import MailhopError
from mailhop.model.message import RecordBatch
from mailhop.store.base import Messages

log = logging.getLogger(__name__)


class OutcomeWriter:
    def __init__(self, messages: Messages, owner: str, on_done: Callable[[int, bool], None]) -> None:
        self.messages = messages
        self.owner = owner  # outcomes apply only where this worker still holds the lease
        self.on_done = on_done  # (jobs finished, whether new messages were written)
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
        try:
            if batch.outcomes or batch.new_messages or batch.delay_notified:
                await self.messages.record(batch)
        except MailhopError as exc:
            # The leases expire and the recipients are tried again: at least once, never lost.
            log.error("recording delivery outcomes failed: %s", exc)
        finally:
            self.on_done(jobs, bool(batch.new_messages))

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
