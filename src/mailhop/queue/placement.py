"""Where a routed recipient waits: its delivery queue, a source server's, Unreachable, or failed.

``place`` turns a ``Route`` into a ``Placement`` (status, queue, next hop, connector,
when to try): the delivery queue of its next hop (waiting for the queue's Retry
timer when the queue is in Retry), the queue of a connector's source servers,
Unreachable (until the delay DSN or expiry is due), or failed at once (routing size
limit).  Submission and the claim path place recipients the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailhop.model.message import FAILED, READY, RETRY, MessageInfo, RecipientUpdate
from mailhop.model.route import RELAY_TO_SOURCE, UNREACHABLE, Route
from mailhop.outcome import Reply
from mailhop.queue.context import Snapshot


@dataclass(slots=True)
class Placement:
    status: str
    queue: str
    delivery_type: str
    next_hop: str
    connector: str | None
    next_attempt_at: float
    last_error: str | None = None
    failure: Reply | None = None

    def update(self, recipient_id: int, status: str, **fields: Any) -> RecipientUpdate:
        """An outcome that also moves the recipient to where it was placed."""
        return RecipientUpdate(recipient_id, status, queue=self.queue, delivery_type=self.delivery_type,
                               next_hop=self.next_hop, connector=self.connector,
                               clear_connector=self.connector is None, **fields)


def place(snapshot: Snapshot, route: Route, info: MessageInfo, now: float) -> Placement:
    """Where a freshly routed recipient waits (not yet leased)."""
    wake = min(info.expires_at, info.delay_at) if info.delay_at else info.expires_at
    if route.failure is not None:
        return Placement(FAILED, route.queue, route.delivery_type, route.next_hop_domain, None, now,
                         str(route.failure), failure=route.failure)
    if route.delivery_type == UNREACHABLE:
        return Placement(RETRY, route.queue, UNREACHABLE, route.next_hop_domain, None, wake, route.reason)
    status, when, error = READY, now, None
    if route.delivery_type != RELAY_TO_SOURCE:
        retry_until = snapshot.retry_until(route.queue, now)
        if retry_until is not None:
            state = snapshot.queue_state(route.queue)
            status, when, error = RETRY, min(retry_until, wake), state.last_error if state else None
    return Placement(status, route.queue, route.delivery_type, route.next_hop_domain,
                     route.connector_guid, when, error)


def deliverable(route: Route, placement: Placement, snapshot: Snapshot) -> bool:
    """May this recipient be handed to delivery now (rather than wait where it was placed)?"""
    return (placement.status == READY and route.delivery_type not in (RELAY_TO_SOURCE, UNREACHABLE)
            and not snapshot.is_suspended(placement.queue))
