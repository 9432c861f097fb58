"""Taking a message into the queue: categorize (route) every recipient, commit, hand off.

``Submission.submit`` routes each recipient and places it (``queue.placement``),
commits the message, and the NDR for any recipient that failed at once, in one
transaction, and only then returns; the receive side answers 250 after that.
Recipients that can be delivered now are leased to this worker in the same
transaction and handed to the scheduler in memory (the rows are on disk already).
Failures of the store propagate as ``StoreError`` and nothing is accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from mailhop.model.message import (
    ACTIVE,
    FAILED,
    NORMAL,
    Body,
    Claim,
    MessageInfo,
    NewMessage,
    NewRecipient,
    RecipientRow,
)
from mailhop.model.route import SUBMISSION_QUEUE, UNDEFINED
from mailhop.outcome import Reply
from mailhop.queue import dsn
from mailhop.queue.context import Live, QueueContext
from mailhop.queue.ndr import NdrComposer
from mailhop.queue.placement import deliverable, place
from mailhop.tracking import events


class HandOffTarget(Protocol):
    """The scheduler, as submission sees it."""

    def can_take(self) -> bool: ...
    def hand_off(self, claim: Claim) -> bool: ...
    def wake(self) -> None: ...


class Submission:
    def __init__(self, ctx: QueueContext, live: Live, ndr: NdrComposer, target: HandOffTarget | None = None) -> None:
        self.ctx = ctx
        self.live = live
        self.ndr = ndr
        self.target = target

    def new_info(self, **fields: object) -> MessageInfo:
        """A MessageInfo with a fresh id and this server's timers."""
        now = self.ctx.clock.now()
        q = self.ctx.settings.queue
        kind = fields.get("kind", NORMAL)
        info = MessageInfo(
            id=self.ctx.ids(), received_at=now, origin_server=self.ctx.server_name,
            expires_at=now + q.message_expiration_timeout,
            delay_at=None if kind != NORMAL else now + q.delay_notification_timeout, sender="", size=0,
        )
        for key, value in fields.items():
            setattr(info, key, value)
        return info

    async def submit(self, info: MessageInfo, body: Body, recipients: list[str], fail_all: Reply | None = None,
                     headers: bytes | None = None, recipient_dsn: Sequence[str | None] | None = None,
                     source: str = "SMTP") -> list[dsn.RecipientReport]:
        """Commit a received message (and NDRs for recipients failed at once), then hand it off.

        ``headers`` is the header block of a spooled ``body`` (for an NDR at once);
        ``recipient_dsn`` each recipient's DSN parameters (NOTIFY, ORCPT), in order; ``source``
        the tracking log's Source of the RECEIVE event.  Returns only after the commit is
        durable, with the recipients failed at once; raises StoreError when it is not.
        """
        target = self.target
        fast = target is not None and target.can_take()
        messages, claim, failed = await self.build(info, body, recipients, fail_all, fast, headers, recipient_dsn)
        await self.ctx.store.messages.submit(messages)
        tracker = self.ctx.tracker
        tracker.emit(events.received(info, recipients, info.receive_connector, source))
        if failed:
            items = [(r.address, r.reply) for r in failed]
            tracker.emit(events.failed(info, items, "ROUTING"))
            if len(messages) > 1:
                tracker.emit(events.dsn(info, items, messages[1].info.id))
        if target is not None:
            if claim is not None:
                target.hand_off(claim)
            if len(messages) > 1 or claim is None or len(claim.recipients) < len(recipients):
                target.wake()
        return failed

    async def build(
        self, info: MessageInfo, body: Body, recipients: list[str], fail_all: Reply | None = None,
        fast_path: bool = True, headers: bytes | None = None, recipient_dsn: Sequence[str | None] | None = None,
    ) -> tuple[list[NewMessage], Claim | None, list[dsn.RecipientReport]]:
        """Route every recipient; return the messages to commit, what to hand off, what failed."""
        ctx = self.ctx
        snapshot = self.live.snapshot
        now = ctx.clock.now()
        rows: list[NewRecipient] = []
        failed: list[dsn.RecipientReport] = []
        handoff: list[RecipientRow] = []
        can_hand_off = fast_path and self.target is not None
        for i, address in enumerate(recipients):
            params = recipient_dsn[i] if recipient_dsn else None
            if fail_all is not None:
                rows.append(NewRecipient(address, FAILED, SUBMISSION_QUEUE, UNDEFINED, SUBMISSION_QUEUE, now,
                                         last_error=str(fail_all), dsn=params, id=ctx.ids()))
                failed.append(dsn.RecipientReport(address, fail_all, dsn=params))
                continue
            route = snapshot.router.route(address, info.sender, info.size)
            p = place(snapshot, route, info, now)
            row = NewRecipient(address, p.status, p.queue, p.delivery_type, p.next_hop, p.next_attempt_at,
                               connector=p.connector, last_error=p.last_error, dsn=params, id=ctx.ids())
            if p.failure is not None:
                failed.append(dsn.RecipientReport(address, p.failure, dsn=params))
            elif can_hand_off and deliverable(route, p, snapshot):
                row.status = ACTIVE
                row.lease_owner = ctx.owner
                row.lease_until = ctx.lease_until()
                handoff.append(RecipientRow(row.id, info.id, address, ACTIVE, p.queue, p.delivery_type,
                                            p.next_hop, now, p.connector, 0, None, ctx.owner, params))
            rows.append(row)
        messages = [NewMessage(info, body, rows)]
        if failed:
            in_memory = body if isinstance(body, bytes) else None
            ndr = await self.ndr.compose(info, failed, original=in_memory, headers=headers)
            if ndr is not None:
                messages.append(ndr)
        claim = Claim(info, handoff, body if isinstance(body, bytes) else None) if handoff else None
        return messages, claim, failed
