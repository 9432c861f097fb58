"""Cluster membership of one server worker: heartbeat, work share, drain and resume.

The heartbeat records this server's state in the store and pushes forward the leases
of the recipients the worker has in memory (claimed, handed over or delivered, and not
recorded yet); a lease it has without a job (a commit whose answer was lost to a dropped
connection) is left to expire, and is recovered like a dead server's.  Each beat also
frees leases that expired (a dead peer's) so its mail is claimed again.  ``follow`` reads the servers' table every poll: the share of due
mail this server claims (live source servers of its connectors split it by message
id) and whether an administrator asked it to drain (``mailhop server drain``).
Draining stops accepting and claiming; jobs not yet started go back to the store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

from mailhop.errors import MailhopError
from mailhop.queue.context import Live, QueueContext
from mailhop.store.base import ServerInfo

log = logging.getLogger(__name__)

DRAINING = "Draining"


class Membership:
    def __init__(self, ctx: QueueContext, live: Live, on_drain: Callable[[], int],
                 on_recovered: Callable[[], None], held: Callable[[], Collection[int]] | None = None) -> None:
        self.ctx = ctx
        self.live = live
        self.held = held  # the recipients this worker has in memory: only their leases are pushed on
        self.on_drain = on_drain          # hands back unstarted work; returns how many messages
        self.on_recovered = on_recovered  # leases were freed, or draining ended: claim again
        self.started_at = ctx.clock.now()
        self.draining = False
        # (peers, my index): live servers sharing connectors with this one split the due mail
        # by message id, so that work spreads over them instead of going to whoever polls first.
        self.share: tuple[int, int] | None = None

    @property
    def state(self) -> str:
        return DRAINING if self.draining else "Active"

    async def heartbeat(self, state: str | None = None) -> None:
        ctx = self.ctx
        now = ctx.clock.now()
        await ctx.store.servers.heartbeat(
            ServerInfo(ctx.server_name, ctx.owner, ctx.settings.server.fqdn, state or self.state,
                       self.started_at, now), ctx.lease_until(), self.held() if self.held else None)

    async def beat(self) -> None:
        """One heartbeat, then free what expired."""
        ctx = self.ctx
        await self.heartbeat()
        if await ctx.store.messages.recover(ctx.owner_prefix, ctx.owner, ctx.clock.now()):
            self.on_recovered()

    async def run(self, stopping: Callable[[], bool]) -> None:
        while not stopping():
            await self.ctx.clock.sleep(self.ctx.settings.cluster.heartbeat_interval)
            try:
                await self.beat()
            except MailhopError as exc:
                log.error("heartbeat failed: %s", exc)

    async def follow(self) -> None:
        """Drain or resume when an administrator asks; recompute this server's share."""
        ctx = self.ctx
        servers = await ctx.store.servers.list()
        self.share = self._share(servers)
        me = next((s for s in servers if s.name.lower() == ctx.server_name.lower()), None)
        draining = me is not None and (me.requested_state or "").lower() == DRAINING.lower()
        if draining == self.draining:
            return
        self.draining = draining
        if draining:
            handed_back = self.on_drain()
            log.warning("draining: not accepting or claiming mail; %d message(s) handed back", handed_back)
        else:
            log.warning("resumed: accepting and delivering mail again")
            self.on_recovered()  # claim again at once
        await self.heartbeat()

    def _share(self, servers: list[ServerInfo]) -> tuple[int, int] | None:
        ctx = self.ctx
        now = ctx.clock.now()
        snapshot = self.live.snapshot
        mine = set(snapshot.my_connectors)
        if not mine:
            return None
        me = ctx.server_name.lower()
        peers = sorted({
            s.name.lower() for s in servers
            if s.state == "Active" and s.requested_state is None
            and now - s.heartbeat_at <= ctx.settings.cluster.lease_timeout
            and any(c.guid in mine and c.is_source(s.name) for c in snapshot.router.connectors)
        } | {me})
        return (len(peers), peers.index(me)) if len(peers) > 1 else None
