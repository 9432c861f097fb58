"""The claim loop: lease due recipients from the store and hand each claim on.

While there is room (``[queue] max_in_memory`` minus what is in flight) and the
server is not draining, it claims up to ``CLAIM_BATCH`` due recipients of this
server's connectors (its share of them in a cluster), leased until the lease
timeout, and passes each message's claim to ``process``.  Then it sleeps until the
next recipient comes due, a poll interval at most, or until woken (new mail that
was not handed over in memory, a connector change, freed leases).  A failing claim
is logged and tried again at the next turn: the store is the truth.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from mailhop.clock import Wakeup
from mailhop.errors import MailhopError
from mailhop.model.message import Claim
from mailhop.queue.context import Live, QueueContext
from mailhop.queue.membership import Membership

log = logging.getLogger(__name__)

CLAIM_BATCH = 500


class Claimer:
    def __init__(self, ctx: QueueContext, live: Live, membership: Membership, room: Callable[[], int],
                 process: Callable[[Claim], Awaitable[None]],
                 hold: Callable[[list[Claim]], None] = lambda claims: None) -> None:
        self.ctx = ctx
        self.live = live
        self.membership = membership
        self.room = room
        self.process = process
        self.hold = hold  # told of every claim at once, before the first is processed
        self._wake = Wakeup()

    def wake(self) -> None:
        self._wake.set()

    async def turn(self) -> bool:
        """Claim and process one batch; True when the batch was full (claim again at once)."""
        ctx = self.ctx
        room = self.room()
        if room <= 0 or self.membership.draining:
            return False
        limit = min(room, CLAIM_BATCH)
        poll = ctx.settings.server.config_poll_interval
        try:
            now = ctx.clock.now()
            claims = await ctx.store.messages.claim(
                ctx.owner, now, ctx.lease_until(), limit, self.live.snapshot.my_connectors,
                share=self.membership.share, stale_before=now - 2 * poll)
        except MailhopError as exc:
            log.error("claiming due mail failed: %s", exc)
            return False
        self.hold(claims)
        for claim in claims:
            try:
                await self.process(claim)
            except Exception:
                log.exception("processing message %s failed", claim.message.id)
        if claims:
            log.debug("claimed %d message(s) (share %s)", len(claims), self.membership.share)
        return len(claims) >= limit

    async def run(self, stopping: Callable[[], bool]) -> None:
        ctx = self.ctx
        poll = ctx.settings.server.config_poll_interval
        while not stopping():
            self._wake.clear()
            if self.room() <= 0 or self.membership.draining:
                # Nothing may be claimed now: wait to be woken (room freed, resumed), not for
                # mail that is due, or this loop would spin while that mail waits.
                await self._wake.wait(ctx.clock, poll)
                continue
            if await self.turn():
                continue
            timeout = poll
            try:
                due = await ctx.store.messages.next_due(self.live.snapshot.my_connectors)
            except MailhopError:
                due = None
            if due is not None:
                timeout = max(0.0, min(poll, due - ctx.clock.now()))
            await self._wake.wait(ctx.clock, timeout + 0.01)
