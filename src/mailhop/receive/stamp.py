"""Headers mailhop adds to a message it accepts.

A ``Received:`` line at the top (RFC 5321 section 4.4, with RFC 3848's
ESMTP/ESMTPS/ESMTPSA and the TLS version and cipher), and ``Message-ID:`` and
``Date:`` at the end of the header block when the client sent none (RFC 5322
requires them; Exchange and Postfix add them too).
"""

from __future__ import annotations

import uuid

from mailhop.headers import block
from mailhop.smtp.server import Session


def received(session: Session, by: str, queue_id: int, recipients: list[str], now: float) -> bytes:
    """The Received: line this server adds (RFC 5321 section 4.4)."""
    helo = session.helo or "unknown"
    lines = [f"Received: from {helo} ([{session.peer_ip}])", f"\tby {by} (mailhop)"]
    tls = session.tls
    with_part = f"\twith {session.protocol}"
    if tls:
        bits = f" ({tls.bits}/{tls.bits} bits)" if tls.bits else ""
        with_part += f" (using {tls.version} with cipher {tls.cipher}{bits})"
    lines.append(with_part)
    if session.auth_user:
        lines.append(f"\t(authenticated as {session.auth_user})")
    date = block.format_date(now)
    if len(recipients) == 1:  # naming the recipient only when there is one, as Postfix does
        lines += [f"\tid {queue_id}", f"\tfor <{recipients[0]}>; {date}"]
    else:
        lines.append(f"\tid {queue_id}; {date}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def missing_headers(pairs: list[tuple[str, str]], fqdn: str, now: float) -> tuple[bytes, str | None]:
    """Message-ID and Date lines to add (bytes), and the message's Message-ID."""
    extra = []
    message_id = block.first(pairs, "Message-ID")
    if message_id is None:
        message_id = f"<{uuid.uuid4().hex}@{fqdn}>"
        extra.append(f"Message-ID: {message_id}\r\n")
    if block.first(pairs, "Date") is None:
        extra.append(f"Date: {block.format_date(now)}\r\n")
    return "".join(extra).encode("ascii"), message_id


def layout(head: bytes, received_line: bytes, additions: bytes) -> tuple[bytes, int, bytes]:
    """How the stamped message is made from the one received: ``(prefix, skip, suffix)``
    such that it is ``prefix + data[skip:] + suffix``.

    Received: first, then the original header block, then the additions (when the message
    has no body, after everything).  ``head`` must hold the whole header block.
    """
    if not additions:
        return received_line, 0, b""
    headers, _ = block.split(head)
    if not headers:  # the message starts with the blank line: it has no headers at all
        return received_line + additions, 0, b""
    if b"\r\n\r\n" not in head:  # headers only, no body
        return received_line, 0, additions
    return received_line + headers + additions, len(headers), b""


def stamp(data: bytes, received_line: bytes, additions: bytes) -> bytes:
    """The stamped message, for a body held in memory."""
    prefix, skip, suffix = layout(data, received_line, additions)
    return prefix + data[skip:] + suffix
