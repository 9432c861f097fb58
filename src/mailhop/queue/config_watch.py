"""Following configuration changes: connectors and queue states, from the store, every poll.

Every ``config_poll_interval`` the queue states (Suspend/Resume-Queue, Retry) are
read and published in a new snapshot; when the connectors' version moved (a change
by the CLI, the API or another server), the connectors are loaded, a new router is
published, and waiting mail is resubmitted as Exchange does: the Unreachable queue,
and recipients of connectors deleted or disabled since the last look.  A connector
that no longer validates is quarantined (skipped by routing) and reported once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mailhop.queue.context import Live, QueueContext, Snapshot
from mailhop.routing.router import Router

log = logging.getLogger(__name__)


class ConfigWatch:
    def __init__(self, ctx: QueueContext, live: Live, on_change: Callable[[], None]) -> None:
        self.ctx = ctx
        self.live = live
        self.on_change = on_change  # after connectors changed: caches to drop, claims to make
        self.version = -1
        self._live_guids: set[str] | None = None  # enabled connectors at the last load
        self._reported: set[tuple[str, str]] = set()
        self._lock = asyncio.Lock()

    async def poll(self, force: bool = False) -> None:
        # One load at a time: two interleaved loads would both resubmit, and diff the
        # connectors against the same earlier set.
        async with self._lock:
            await self._poll(force)

    async def _poll(self, force: bool) -> None:
        ctx = self.ctx
        store = ctx.store
        version = await store.connectors.version()
        states = {q.queue.lower(): q for q in await store.queues.states()}
        self.live.publish(self.live.snapshot.with_states(states))
        if version == self.version and not force:
            return
        self.version = version
        loaded = await store.connectors.load()
        for q in loaded.quarantined:
            if (q.guid, q.reason) not in self._reported:
                self._reported.add((q.guid, q.reason))
                log.error("send connector '%s' is quarantined (skipped by routing until it is fixed or "
                          "removed): %s", q.name, q.reason)
        self.live.publish(Snapshot(Router(loaded.valid, ctx.server_name)).with_states(states))
        live = [c.guid for c in loaded.valid if c.enabled]
        # At start the connectors the queue names are checked; afterwards only those gone since.
        removed = None if self._live_guids is None else sorted(self._live_guids - set(live))
        moved = await store.messages.resubmit(live, ctx.clock.now(), removed)
        self._live_guids = set(live)
        if not force:
            log.info("send connectors changed (version %d); %d recipient(s) resubmitted", version, moved)
        self.on_change()
