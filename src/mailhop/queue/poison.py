"""Poison messages: the crash journal at start, and delivering suspects one at a time.

Each delivery is written to this worker's crash journal when it starts and when it
ends.  At start, messages begun but not ended were in flight when the previous run
crashed: each gets a crash counted in the store, and those at ``[queue]
poison_threshold`` go to the Poison queue (POISONMESSAGE in the tracking log).
Messages with a crash counted are then delivered one at a time, so that a second
crash points at the message that causes it and not at its neighbours.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from mailhop.errors import MailhopError
from mailhop.outcome import POISON
from mailhop.queue.context import QueueContext
from mailhop.queue.journal import CrashJournal
from mailhop.tracking import events

log = logging.getLogger(__name__)


class PoisonGuard:
    def __init__(self, ctx: QueueContext, journal: CrashJournal) -> None:
        self.ctx = ctx
        self.journal = journal
        self._suspects: deque[tuple[int, Callable[[], None]]] = deque()
        self._suspect_running = False

    async def recover(self) -> None:
        """Count the previous run's crash against the messages it was handling."""
        crashed = self.journal.recover()
        if not crashed:
            return
        log.warning("%d message(s) were being handled when the previous run crashed", len(crashed))
        store = self.ctx.store
        poisoned = await store.messages.mark_crashed(crashed, self.ctx.settings.queue.poison_threshold)
        for mid in poisoned:
            try:
                info, rows = await store.queues.get_message(mid)
            except MailhopError:
                continue
            log.error("message %d crashed the server %d times: moved to the Poison queue", mid, info.crash_count)
            self.ctx.tracker.emit(events.poisoned(info, [r.address for r in rows], POISON))

    def start(self, message_id: int, crash_count: int, run: Callable[[], None]) -> None:
        """Run a delivery of ``message_id`` now, or after the suspect before it when it is one."""
        if crash_count > 0:
            self._suspects.append((message_id, run))
            self._next_suspect()
            return
        self.journal.begin(message_id)
        run()

    def finished(self, message_id: int, crash_count: int) -> None:
        self.journal.end(message_id)
        if crash_count > 0:
            self._suspect_running = False
            self._next_suspect()

    def _next_suspect(self) -> None:
        if self._suspect_running or not self._suspects:
            return
        message_id, run = self._suspects.popleft()
        self._suspect_running = True
        self.journal.begin(message_id)
        run()

    def close(self) -> None:
        self.journal.close()
