"""Delivery status notifications (RFC 3464): NDRs and delay DSNs.

``build`` returns the bytes of a ``multipart/report; report-type=delivery-status``
message: a human-readable part in Exchange's wording, the machine-readable
``message/delivery-status`` part, and the original message (``message/rfc822``)
or only its headers (``text/rfc822-headers``) when it is larger than the attach
limit; nothing of a REQUIRETLS message (RFC 8689 section 5).  A DSN is always sent
from the null reverse-path; never build one for a message whose sender is null (the
caller checks ``should_notify``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from mailhop.headers import block
from mailhop.model import dsn_params
from mailhop.model.message import MessageInfo
from mailhop.outcome import Reply


@dataclass(frozen=True, slots=True)
class RecipientReport:
    address: str
    reply: Reply
    remote_mta: str | None = None
    dsn: str | None = None       # the recipient's NOTIFY and ORCPT (model.dsn_params)
    action: str = "failed"       # failed | relayed (delay notices say delayed)


def should_notify(info: MessageInfo) -> bool:
    """Never a DSN to the null sender (a DSN about a DSN would loop)."""
    return bool(info.sender)


_date = block.format_date


def build(
    info: MessageInfo,
    original: bytes,
    reports: list[RecipientReport],
    *,
    reporting_mta: str,
    postmaster: str,
    now: float,
    attach_limit: int | None,
    delayed: bool = False,
    retry_until: float | None = None,
) -> tuple[bytes, str]:
    """The DSN's bytes and its Message-ID."""
    boundary = f"mailhop-{uuid.uuid4().hex}"
    headers_part, _ = block.split(original)
    # A REQUIRETLS message's NDR carries nothing of it, its Subject included: the NDR may travel
    # where the message was not allowed to (RFC 8689 section 5).
    subject = "" if info.require_tls else block.first(block.fields(headers_part), "Subject") or ""
    message_id = f"<{uuid.uuid4().hex}@{reporting_mta}>"
    relayed = not delayed and all(r.action == "relayed" for r in reports)
    prefix = "Delivery delayed:" if delayed else "Relayed:" if relayed else "Undeliverable:"
    lines = [
        f"From: Mail Delivery System <{postmaster}>",
        f"To: <{info.sender}>",
        f"Subject: {prefix} {subject}".rstrip(),
        f"Date: {_date(now)}",
        f"Message-ID: {message_id}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        "This is a MIME-encapsulated delivery status notification.",
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
    ]
    if delayed:
        lines += [
            "Delivery is delayed to these recipients or groups:",
            "",
            *[r.address for r in reports],
            "",
            "This message hasn't been delivered yet. Delivery will continue to be attempted.",
            f"The server will keep trying to deliver this message until {_date(retry_until or now)}.",
        ]
    elif relayed:
        lines += ["Delivery to these recipients or groups is complete, but no delivery notification was sent by "
                  "the destination server:", "", *[r.address for r in reports], ""]
    else:
        lines += ["Delivery has failed to these recipients or groups:", ""]
        for r in reports:
            lines += [r.address, f"The server returned '{r.reply}'.", ""]
    if info.require_tls:
        lines += ["", "The message was sent with REQUIRETLS: this report does not return its content."]
    lines += ["", "Diagnostic information for administrators:", "", f"Generating server: {reporting_mta}", ""]
    for r in reports:
        source = f"Remote server {r.remote_mta}" if r.remote_mta else "Local server"
        lines += [r.address, f"{source} returned '{r.reply}'", ""]
    lines += [
        f"--{boundary}",
        "Content-Type: message/delivery-status",
        "",
        f"Reporting-MTA: dns; {reporting_mta}",
        *([f"Original-Envelope-Id: {dsn_params.envid(info.dsn)}"] if dsn_params.envid(info.dsn) else []),
        f"X-Mailhop-Internal-Message-Id: {info.id}",
        f"Arrival-Date: {_date(info.received_at)}",
        "",
    ]
    for r in reports:
        status = r.reply.enhanced or ("4.0.0" if r.reply.temporary else "5.0.0")
        original_recipient = dsn_params.orcpt(r.dsn)
        lines += [
            *([f"Original-Recipient: {original_recipient.replace(';', '; ', 1)}"] if original_recipient else []),
            f"Final-Recipient: rfc822; {r.address}",
            f"Action: {'delayed' if delayed else r.action}",
            f"Status: {status}",
        ]
        if r.remote_mta:
            lines.append(f"Remote-MTA: dns; {r.remote_mta}")
        lines.append(f"Diagnostic-Code: smtp; {r.reply}")
        if delayed and retry_until:
            lines.append(f"Will-Retry-Until: {_date(retry_until)}")
        lines.append("")
    if info.require_tls:
        return ("\r\n".join(lines) + f"\r\n--{boundary}--\r\n").encode("utf-8"), message_id
    attach_whole = attach_limit is None or len(original) <= attach_limit
    lines += [
        f"--{boundary}",
        "Content-Type: message/rfc822" if attach_whole else "Content-Type: text/rfc822-headers",
        "",
    ]
    head = ("\r\n".join(lines) + "\r\n").encode("utf-8")
    attached = original if attach_whole else headers_part
    if not attached.endswith(b"\r\n"):
        attached += b"\r\n"
    return head + attached + f"\r\n--{boundary}--\r\n".encode("ascii"), message_id
