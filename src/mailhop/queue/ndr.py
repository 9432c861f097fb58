"""Composing NDRs and delay DSNs as queued messages, routed back to the sender.

One ``NdrComposer`` serves submission (recipients failed at once), the outcome path
(5xx, expiry, delay), and Remove-Message with an NDR.  The original is attached
whole up to ``[queue] ndr_max_attach_size``, headers only above it; when the caller
does not have it at hand, it is read from the store (only the first part for
headers).  Never a DSN to the null sender (``dsn.should_notify``).  Reports are DKIM-signed
for the domain of their From: (the postmaster address) when a signing config covers it.
"""

from __future__ import annotations

from mailhop.dkim.keyring import Keyring, sign_message
from mailhop.headers import block
from mailhop.model import dsn_params
from mailhop.model.message import DELAY_DSN, NDR, MessageInfo, NewMessage, NewRecipient
from mailhop.queue import dsn
from mailhop.queue.context import Live, QueueContext
from mailhop.queue.placement import place


class NdrComposer:
    def __init__(self, ctx: QueueContext, live: Live, keyring: Keyring | None = None) -> None:
        self.ctx = ctx
        self.live = live
        self.keyring = keyring

    async def compose(self, info: MessageInfo, reports: list[dsn.RecipientReport], *, delayed: bool = False,
                      original: bytes | None = None, headers: bytes | None = None) -> NewMessage | None:
        """The NDR (or delay DSN) for ``reports`` of ``info``; ``original`` is the whole message
        when at hand, ``headers`` its header block when only that is; otherwise the store's copy."""
        if not dsn.should_notify(info):
            return None
        # RFC 3461 NOTIFY: only the recipients that asked to hear of this (NEVER: none of them).
        reports = [r for r in reports if dsn_params.wants(
            r.dsn, "DELAY" if delayed else "SUCCESS" if r.action == "relayed" else "FAILURE")]
        if not reports:
            return None
        s = self.ctx.settings
        limit = s.queue.ndr_max_attach_size
        if dsn_params.ret(info.dsn) == "HDRS" or info.binary_mime:
            limit = 0  # RET=HDRS, or a binary body an NDR could not carry as it is: the headers only
        if info.require_tls:
            original = b""  # nothing of a REQUIRETLS message goes into its NDR (dsn.build)
        if original is None:
            if headers is None and (limit is None or info.size <= limit):
                original = await self.ctx.store.messages.body(info.id)
            else:
                if headers is None:
                    first = await anext(aiter(self.ctx.store.messages.body_parts(info.id)))
                    headers = block.split(first)[0] or first
                original, limit = headers, 0
        now = self.ctx.clock.now()
        data, message_id = dsn.build(
            info, original, reports, reporting_mta=s.server.fqdn, postmaster=s.server.postmaster_address,
            now=now, attach_limit=limit, delayed=delayed, retry_until=info.expires_at,
        )
        relayed = all(r.action == "relayed" for r in reports)
        subject = "Delivery delayed" if delayed else "Relayed" if relayed else "Undeliverable"
        return self.new_message(data, info.sender, message_id, subject, DELAY_DSN if delayed else NDR)

    def new_message(self, data: bytes, recipient: str, message_id: str, subject: str, kind: str) -> NewMessage:
        """A message mailhop writes itself (an NDR, a DSN, a TLS report) from the null sender to
        ``recipient``: DKIM-signed for its From: domain when a config covers it, routed and
        placed in its queue as a submitted message would be."""
        s = self.ctx.settings
        now = self.ctx.clock.now()
        data = sign_message(self.keyring, data, now)
        info = MessageInfo(
            id=self.ctx.ids(), sender="", received_at=now, size=len(data), origin_server=self.ctx.server_name,
            expires_at=now + s.queue.message_expiration_timeout, delay_at=None, message_id=message_id,
            subject=subject, kind=kind,
        )
        snapshot = self.live.snapshot
        route = snapshot.router.route(recipient, "", len(data))
        p = place(snapshot, route, info, now)
        row = NewRecipient(recipient, p.status, p.queue, p.delivery_type, p.next_hop, p.next_attempt_at,
                           connector=p.connector, last_error=p.last_error, id=self.ctx.ids())
        return NewMessage(info, data, [row])
