"""What an administrator sees and steers: Get-Queue, Get-Message, Retry-Queue,
Suspend/Resume-Queue and -Message, Remove-Message.

The CLI, the REST API and the control socket call ``QueueService``; it works on the
store, so a running server (or every server of a cluster) picks a change up at its
next poll, with no restart.  Remove-Message with an NDR composes the NDR and writes
the tracking events here: inside the running server when one runs (the CLI reaches
it through the control socket), in the CLI's own process only when none does.
Objects are dicts keyed by Exchange's property names.  Unknown queues and messages
raise ``NotFoundError``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from mailhop.clock import Clock
from mailhop.errors import NotFoundError, ValidationError
from mailhop.model.message import ACTIVE, FINAL, POISON, RETRY, SUSPENDED, MessageInfo, RecipientRow
from mailhop.model.route import (
    POISON_QUEUE,
    SUBMISSION_QUEUE,
    UNDEFINED,
    UNREACHABLE,
    UNREACHABLE_QUEUE,
)
from mailhop.outcome import QUEUE_ADMIN
from mailhop.queue import dsn
from mailhop.queue.ndr import NdrComposer
from mailhop.store.base import QueueState, Store
from mailhop.tracking import events
from mailhop.tracking.events import Tracker
from mailhop.tracking.log import iso

SPECIAL = {
    SUBMISSION_QUEUE: (UNDEFINED, "Submission"),
    UNREACHABLE_QUEUE: (UNREACHABLE, "Unreachable Domain"),
    POISON_QUEUE: (UNDEFINED, "Poison Message"),
}


def queue_name(identity: str) -> str:
    """Accept Exchange's ``Server\\Queue`` identities as well as the bare queue name."""
    return identity.rsplit("\\", 1)[-1].strip()


def _time(ts: float | None) -> str | None:
    return iso(ts) if ts else None


def _message_status(rows: list[RecipientRow]) -> str:
    statuses = {r.status for r in rows}
    for status, shown in ((ACTIVE, "Active"), (POISON, "Suspended"), (SUSPENDED, "Suspended"), (RETRY, "Retry")):
        if status in statuses:
            return shown
    return "Ready"


def message_view(info: MessageInfo, rows: list[RecipientRow], queue: str) -> dict[str, Any]:
    return {
        "Identity": info.id,
        "Queue": queue,
        "FromAddress": info.sender or "<>",
        "Status": _message_status(rows),
        "Size": info.size,
        "Subject": info.subject,
        "InternetMessageId": info.message_id,
        "DateReceived": _time(info.received_at),
        "ExpirationTime": _time(info.expires_at),
        "RetryCount": max((r.attempts for r in rows), default=0),
        "LastError": next((r.last_error for r in rows if r.last_error), None),
        "SourceIP": info.client_ip,
        "Recipients": [{"Address": r.address, "Status": r.status.capitalize(), "LastError": r.last_error}
                       for r in rows],
    }


class QueueService:
    def __init__(self, store: Store, clock: Clock, tracker: Tracker, ndr: NdrComposer,
                 wake: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.clock = clock
        self.tracker = tracker
        self.ndr = ndr
        self.wake = wake  # the server's claimer: mail made due now is claimed now

    async def list_queues(self) -> list[dict[str, Any]]:
        states = {s.queue.lower(): s for s in await self.store.queues.states()}
        connectors = {c.guid: c.name for c in await self.store.connectors.list()}
        out: dict[str, dict[str, Any]] = {}
        for q in await self.store.queues.summary():
            state = states.get(q.queue.lower())
            # A queue stays in Retry from a failed connection until a delivery succeeds.
            in_retry = state is not None and state.retry_count > 0
            status = ("Suspended" if state and state.suspended else "Retry" if in_retry
                      else "Active" if q.active_count else "Ready")
            delivery_type, next_hop = SPECIAL.get(q.queue, (q.delivery_type, q.next_hop))
            out[q.queue.lower()] = {
                "Identity": q.queue,
                "DeliveryType": delivery_type,
                "Status": status,
                "MessageCount": q.message_count,
                "NextHopDomain": next_hop,
                "NextHopConnector": connectors.get(q.connector or ""),
                "NextRetryTime": _time(state.retry_until) if in_retry and state else None,
                "RetryCount": state.retry_count if state else 0,
                "LastRetryTime": _time(state.last_retry_at) if state else None,
                "LastError": (state.last_error if state and state.last_error else None) or q.last_error,
            }
        for name in (SUBMISSION_QUEUE, UNREACHABLE_QUEUE):
            if name.lower() not in out:
                delivery_type, next_hop = SPECIAL[name]
                suspended = name.lower() in states and states[name.lower()].suspended
                out[name.lower()] = {"Identity": name, "DeliveryType": delivery_type,
                                     "Status": "Suspended" if suspended else "Ready", "MessageCount": 0,
                                     "NextHopDomain": next_hop, "NextHopConnector": None, "NextRetryTime": None,
                                     "RetryCount": 0, "LastRetryTime": None, "LastError": None}
        for key, state in states.items():
            if key not in out and state.suspended:  # an empty suspended queue stays visible
                out[key] = {"Identity": state.queue, "DeliveryType": None, "Status": "Suspended", "MessageCount": 0,
                            "NextHopDomain": state.queue, "NextHopConnector": None, "NextRetryTime": None,
                            "RetryCount": state.retry_count, "LastRetryTime": _time(state.last_retry_at),
                            "LastError": state.last_error}
        order = {SUBMISSION_QUEUE.lower(): 0, UNREACHABLE_QUEUE.lower(): 1, POISON_QUEUE.lower(): 2}
        return sorted(out.values(), key=lambda q: (order.get(str(q["Identity"]).lower(), 3), str(q["Identity"]).lower()))

    async def list_messages(self, queue: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        name = queue_name(queue) if queue else None
        out = []
        for info, rows in await self.store.queues.messages(name, limit):
            waiting = [r for r in rows if r.status not in FINAL]
            by_queue: dict[str, list[RecipientRow]] = {}
            for r in waiting:
                by_queue.setdefault(r.queue, []).append(r)
            for q, q_rows in sorted(by_queue.items()):
                if name is None or q.lower() == name.lower():
                    out.append(message_view(info, q_rows, q))
        return out

    async def _require_queue(self, name: str) -> str:
        for q in await self.store.queues.summary():
            if q.queue.lower() == name.lower():
                return q.queue
        for s in await self.store.queues.states():
            if s.queue.lower() == name.lower():
                return s.queue
        if name.lower() in (n.lower() for n in SPECIAL):
            return next(n for n in SPECIAL if n.lower() == name.lower())
        raise NotFoundError(f"The queue '{name}' was not found")

    async def retry(self, identity: str) -> dict[str, Any]:
        """Retry-Queue: its waiting recipients are due now and its retry timer is reset.

        The queue's state the scheduler routes by is cleared first: a recipient claimed the
        moment the store says it is due must not be held back by the Retry state the
        scheduler still had (it would wait out the old timer, an hour with Exchange's
        defaults, until the next config poll had come too late)."""
        name = await self._require_queue(queue_name(identity))
        live = self.ndr.live
        state = live.snapshot.queue_state(name)
        if state is not None and state.retry_until:
            live.publish(live.snapshot.with_state(replace(state, retry_until=None)))
        count = await self.store.queues.retry(name, self.clock.now())
        self.wake()
        return {"Identity": queue_name(identity), "RecipientsRetried": count}

    async def set_queue_suspended(self, identity: str, suspended: bool) -> str:
        name = await self._require_queue(queue_name(identity))
        current = next((s for s in await self.store.queues.states() if s.queue.lower() == name.lower()),
                       QueueState(name))
        await self.store.queues.set_state(replace(current, suspended=suspended))
        return name

    async def set_message_suspended(self, message_id: int, suspended: bool) -> int:
        if suspended:
            return await self.store.queues.suspend_message(message_id)
        return await self.store.queues.resume_message(message_id, self.clock.now())

    async def remove_message(self, message_id: int, with_ndr: bool) -> dict[str, Any]:
        """Delete a message from every queue; with an NDR (``550 4.3.2 QUEUE.Admin``) to its sender."""
        info, rows = await self.store.queues.get_message(message_id)
        pending = [r for r in rows if r.status not in FINAL]
        if not pending:
            raise ValidationError(f"The message {message_id} has no recipients left to remove")
        reports = [dsn.RecipientReport(r.address, QUEUE_ADMIN, dsn=r.dsn) for r in pending]
        ndr = await self.ndr.compose(info, reports) if with_ndr else None
        await self.store.queues.remove_message(message_id, ndr)
        items = [(r.address, QUEUE_ADMIN) for r in pending]
        self.tracker.emit(events.failed(info, items, "ADMIN"))
        if ndr is not None:
            self.tracker.emit(events.dsn(info, items, ndr.info.id))
        return {"Identity": message_id, "Removed": [r.address for r in pending], "NdrSent": ndr is not None}
