"""What the SMTP client writes in DATA: bodies whole or in pieces, dot-stuffed (RFC 5321 4.5.2)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class BodyStream(Protocol):
    """A body read part by part (from the store) instead of held whole in memory."""

    size: int

    def chunks(self) -> AsyncIterator[bytes]: ...


Body = bytes | BodyStream


def dot_stuff(body: bytes) -> bytes:
    """The DATA payload: CRLF line ends, leading dots doubled, the terminating dot."""
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    body = body.replace(b"\r\n.", b"\r\n..")
    if body.startswith(b"."):
        body = b"." + body
    return body + b".\r\n"


class DotStuffer:
    """``dot_stuff`` for a body that comes in pieces: ``feed`` each piece, then ``end``.

    A CR or CRLF that ends a piece is held back until the next piece shows whether a
    dot follows it; the start of the body counts as the start of a line.
    """

    def __init__(self) -> None:
        self._carry = b"\r\n"  # a line start before the body; its two bytes never leave
        self._strip = 2
        self._empty = True

    def feed(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        self._empty = False
        data = self._carry + chunk
        cut = len(data) - (2 if data.endswith(b"\r\n") else 1 if data.endswith(b"\r") else 0)
        self._carry = data[cut:]
        out = data[:cut].replace(b"\r\n.", b"\r\n..")
        if self._strip and out:
            out, self._strip = out[self._strip:], 0
        return out

    def end(self) -> bytes:
        if self._empty:
            return b".\r\n"
        tail = self._carry  # the body is not empty, so the line start before it has left
        if not tail.endswith(b"\r\n"):
            tail += b"\r\n"
        return tail + b".\r\n"
