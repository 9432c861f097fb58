"""Poison messages: the crash journal at start, and delivering suspects alone.

Each delivery is written to this worker's crash journal when it starts and when it
ends.  At start, messages begun but not ended were in flight when the previous run
crashed.  A crash with many messages in flight says nothing against any one of them
(a ``kill -9``, a power cut, the OOM killer): they only become *suspects* (crash
count 1).  Suspects are then delivered alone, one at a time with nothing else of this
worker in flight (new deliveries wait meanwhile), and only a crash while a suspect is
handled alone counts against it; at ``[queue] poison_threshold`` such crashes it goes
to the Poison queue (POISONMESSAGE in the tracking log).
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
        self._held: deque[tuple[int, Callable[[], None]]] = deque()  # waiting for the suspects to go
        self._suspect_running = False

    async def recover(self) -> None:
        """Count the previous run's crash against the message it handled alone, if it did;
        the messages in flight beside others become suspects."""
        crashed = self.journal.recover()
        if not crashed:
            return
        store = self.ctx.store
        alone = sorted(self.journal.alone)
        if not alone:
            log.warning("%d message(s) were being handled when the previous run crashed: delivered alone "
                        "from now on, one at a time", len(crashed))
            await store.messages.mark_suspect(crashed)
            return
        log.warning("message %d was being handled alone when the previous run crashed", alone[0])
        # The count of a suspect starts at 1 (its first crash, beside others): the threshold
        # counts the crashes while alone.
        poisoned = await store.messages.mark_crashed(alone, self.ctx.settings.queue.poison_threshold + 1)
        for mid in poisoned:
            try:
                info, rows = await store.queues.get_message(mid)
            except MailhopError:
                continue
            log.error("message %d crashed the server %d times while handled alone: moved to the Poison queue",
                      mid, info.crash_count - 1)
            self.ctx.tracker.emit(events.poisoned(info, [r.address for r in rows], POISON))

    def start(self, message_id: int, crash_count: int, run: Callable[[], None]) -> None:
        """Run a delivery of ``message_id`` now; a suspect once nothing else is in flight, and
        anything else after the suspects."""
        if crash_count > 0:
            self._suspects.append((message_id, run))
        elif self._suspects or self._suspect_running:
            self._held.append((message_id, run))
        else:
            self.journal.begin(message_id)
            run()
            return
        self._pump()

    def finished(self, message_id: int, crash_count: int) -> None:
        self.journal.end(message_id)
        if crash_count > 0:
            self._suspect_running = False
        self._pump()

    def _pump(self) -> None:
        if self._suspect_running:
            return
        if self._suspects:
            if self.journal.active:  # others still in flight: not alone yet
                return
            message_id, run = self._suspects.popleft()
            self._suspect_running = True
            self.journal.begin(message_id, alone=True)
            run()
            return
        while self._held and not self._suspects and not self._suspect_running:
            message_id, run = self._held.popleft()
            self.journal.begin(message_id)
            run()

    def close(self) -> None:
        self.journal.close()
