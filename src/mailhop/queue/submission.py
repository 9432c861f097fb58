"""Taking a message into the queue: categorize (route) every recipient, commit, hand off.

``place`` decides where one recipient waits from its route: the delivery queue
of its next hop (leased to this server right away when it can deliver it now),
the queue of a connector's source servers, Unreachable, or failed at once
(routing size limit, mail loop).  ``Submission.submit`` commits the message,
and the NDR for any recipient that failed at once, in one transaction, and only
then returns; the receive side answers 250 after that.  Failures of the store
propagate as ``StoreError`` and nothing is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mailhop.model.message import (
    ACTIVE,
    FAILED,
    NDR,
    READY,
    RETRY,
    Claim,
    MessageInfo,
    NewMessage,
    NewRecipient,
    RecipientRow,
)
from mailhop.model.route import RELAY_TO_SOURCE, UNREACHABLE, Route
from mailhop.outcome import Reply
from mailhop.queue import dsn
from mailhop.queue.runtime import Runtime


class HandOffTarget(Protocol):
    """The scheduler, as submission sees it."""

    def can_take(self) -> bool: ...
    def hand_off(self, claim: Claim) -> bool: ...
    def wake(self) -> None: ...


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


def place(rt: Runtime, route: Route, info: MessageInfo, now: float) -> Placement:
    """Where a freshly routed recipient waits (not yet leased)."""
    wake = min(info.expires_at, info.delay_at) if info.delay_at else info.expires_at
    if route.failure is not None:
        return Placement(FAILED, route.queue, route.delivery_type, route.next_hop_domain, None, now,
                         str(route.failure), failure=route.failure)
    if route.delivery_type == UNREACHABLE:
        return Placement(RETRY, route.queue, UNREACHABLE, route.next_hop_domain, None, wake, route.reason)
    status, when, error = READY, now, None
    if route.delivery_type != RELAY_TO_SOURCE:
        retry_until = rt.retry_until(route.queue)
        if retry_until is not None:
            state = rt.queue_state(route.queue)
            status, when, error = RETRY, min(retry_until, wake), state.last_error if state else None
    return Placement(status, route.queue, route.delivery_type, route.next_hop_domain,
                     route.connector_guid, when, error)


class Submission:
    def __init__(self, rt: Runtime, scheduler: HandOffTarget | None = None) -> None:
        self.rt = rt
        self.scheduler = scheduler

    async def submit(self, info: MessageInfo, body: bytes, recipients: list[str],
                     fail_all: Reply | None = None) -> None:
        """Commit a received message (and NDRs for recipients failed at once), then hand it off.

        Returns only after the commit is durable; raises StoreError when it is not.
        """
        scheduler = self.scheduler
        fast = scheduler is not None and scheduler.can_take()
        messages, claim, failed = self.build(info, body, recipients, fail_all, fast_path=fast)
        await self.rt.store.messages.submit(messages)
        tracking = self.rt.tracking
        tracking.event("RECEIVE", info, source="SMTP", recipients=recipients,
                       connector_id=info.receive_connector)
        if failed:
            tracking.event("FAIL", info, source="ROUTING", recipients=[r.address for r in failed],
                           recipient_status=[str(r.reply) for r in failed])
            if len(messages) > 1:
                tracking.event("DSN", info, source="DSN", recipients=[r.address for r in failed],
                               recipient_status=[str(r.reply) for r in failed],
                               extra={"RelatedInternalMessageId": messages[1].info.id, "DsnType": "failure"})
        if scheduler is not None:
            if claim is not None:
                scheduler.hand_off(claim)
            if len(messages) > 1 or claim is None or len(claim.recipients) < len(recipients):
                scheduler.wake()

    def new_info(self, **fields: object) -> MessageInfo:
        """A MessageInfo with a fresh id and this server's timers."""
        now = self.rt.clock()
        q = self.rt.settings.queue
        kind = fields.get("kind", "normal")
        info = MessageInfo(
            id=self.rt.ids(),
            received_at=now,
            origin_server=self.rt.server_name,
            expires_at=now + q.message_expiration_timeout,
            delay_at=None if kind != "normal" else now + q.delay_notification_timeout,
            sender="",
            size=0,
        )
        for key, value in fields.items():
            setattr(info, key, value)
        return info

    def build(
        self, info: MessageInfo, body: bytes, recipients: list[str], fail_all: Reply | None = None,
        fast_path: bool = True,
    ) -> tuple[list[NewMessage], Claim | None, list[dsn.RecipientReport]]:
        """Route every recipient; return the messages to commit, what to hand off, what failed."""
        rt = self.rt
        now = rt.clock()
        rows: list[NewRecipient] = []
        failed: list[dsn.RecipientReport] = []
        handoff: list[RecipientRow] = []
        can_hand_off = fast_path and self.scheduler is not None
        for address in recipients:
            if fail_all is not None:
                rows.append(NewRecipient(address, FAILED, "Submission", "Undefined", "Submission", now,
                                         last_error=str(fail_all), id=rt.ids()))
                failed.append(dsn.RecipientReport(address, fail_all))
                continue
            route = rt.router.route(address, info.sender, info.size)
            p = place(rt, route, info, now)
            row = NewRecipient(address, p.status, p.queue, p.delivery_type, p.next_hop, p.next_attempt_at,
                               connector=p.connector, last_error=p.last_error, id=rt.ids())
            if p.failure is not None:
                failed.append(dsn.RecipientReport(address, p.failure))
            elif (can_hand_off and p.status == READY and route.delivery_type not in (RELAY_TO_SOURCE, UNREACHABLE)
                  and not rt.is_suspended(p.queue)):
                row.status = ACTIVE
                row.lease_owner = rt.owner
                row.lease_until = rt.lease_until
                handoff.append(RecipientRow(row.id, info.id, address, ACTIVE, p.queue, p.delivery_type,
                                            p.next_hop, now, p.connector, 0, None, rt.owner))
            rows.append(row)
        messages = [NewMessage(info, body, rows)]
        if failed:
            ndr = self.compose_ndr(info, body, failed)
            if ndr is not None:
                messages.append(ndr)
        claim = Claim(info, handoff, body) if handoff else None
        return messages, claim, failed

    def compose_ndr(self, info: MessageInfo, body: bytes, failed: list[dsn.RecipientReport],
                    delayed: bool = False) -> NewMessage | None:
        """The NDR (or delay DSN) for ``failed`` recipients of ``info``, routed to its sender."""
        if not dsn.should_notify(info):
            return None
        rt = self.rt
        s = rt.settings
        now = rt.clock()
        data, message_id = dsn.build(
            info, body, failed, reporting_mta=s.server.fqdn, postmaster=s.server.postmaster_address,
            now=now, attach_limit=s.queue.ndr_max_attach_size, delayed=delayed, retry_until=info.expires_at,
        )
        ndr = self.new_info(sender="", size=len(data), kind=NDR if not delayed else "delay",
                            subject=("Delivery delayed" if delayed else "Undeliverable"),
                            client_ip=None, receive_connector=None, message_id=message_id)
        route = rt.router.route(info.sender, "", len(data))
        p = place(rt, route, ndr, now)
        row = NewRecipient(info.sender, p.status, p.queue, p.delivery_type, p.next_hop, p.next_attempt_at,
                           connector=p.connector, last_error=p.last_error, id=rt.ids())
        return NewMessage(ndr, data, [row])
