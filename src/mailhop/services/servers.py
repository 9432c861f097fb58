"""Transport servers sharing a store: Get-TransportService, and draining one for maintenance.

A server reports itself with a heartbeat (state, time); one whose heartbeat is older
than ``[cluster] lease_timeout`` is shown as ``Unreachable``: its leases have expired
and the other servers deliver its mail.  ``drain`` asks a server to stop accepting and
claiming mail and to hand back what it has not started (Exchange's
``Set-ServerComponentState HubTransport -State Draining``); ``resume`` undoes it.
"""

from __future__ import annotations

from typing import Any

from mailhop.clock import Clock
from mailhop.queue.membership import DRAINING
from mailhop.store.base import Store
from mailhop.tracking.log import iso


class ServerService:
    def __init__(self, store: Store, lease_timeout: float, clock: Clock) -> None:
        self.store = store
        self.lease_timeout = lease_timeout
        self.clock = clock

    async def list(self) -> list[dict[str, Any]]:
        store = self.store
        now = self.clock.now()
        servers = await store.servers.list()
        active = await store.servers.active_by_owner()
        connectors = await store.connectors.list()
        summary = await store.queues.summary()
        out = []
        for s in servers:
            sourced = {c.guid for c in connectors if c.enabled and c.is_source(s.name)}
            queued = sum(q.message_count for q in summary if q.connector in sourced)
            alive = now - s.heartbeat_at <= self.lease_timeout
            state = s.state if s.state == "Stopped" or alive else "Unreachable"
            if s.requested_state == DRAINING and state == "Active":
                state = "Draining (requested)"
            out.append({
                "Name": s.name,
                "Fqdn": s.fqdn,
                "State": state,
                "RequestedState": s.requested_state or "Active",
                "LastHeartbeat": iso(s.heartbeat_at),
                "StartedAt": iso(s.started_at),
                "ActiveRecipients": sum(n for owner, n in active.items() if owner.startswith(f"{s.name}/")),
                "QueuedMessages": queued,
            })
        return out

    async def request_state(self, name: str, draining: bool) -> dict[str, Any]:
        server = await self.store.servers.request_state(name, DRAINING if draining else None)
        return {"Name": server.name, "RequestedState": server.requested_state or "Active"}
