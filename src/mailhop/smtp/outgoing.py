"""What the SMTP client writes in DATA: bodies whole or in pieces, dot-stuffed (RFC 5321 4.5.2)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Protocol

_BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")


class BodyStream(Protocol):
    """A body read part by part (from the store) instead of held whole in memory."""

    size: int

    def chunks(self) -> AsyncIterator[bytes]: ...


Body = bytes | BodyStream


def _crlf_only(data: bytes) -> bytes:
    """Bare CR and LF as CRLF: the receive side stores nothing else, but a body from an older
    store or another path must not reach a next hop that reads them as line ends either."""
    crlf = data.count(b"\r\n")
    if data.count(b"\n") != crlf or data.count(b"\r") != crlf:
        return _BARE.sub(b"\r\n", data)
    return data


def dot_stuff(body: bytes) -> bytes:
    """The DATA payload: CRLF line ends, leading dots doubled, the terminating dot."""
    body = _crlf_only(body)
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    body = body.replace(b"\r\n.", b"\r\n..")
    if body.startswith(b"."):
        body = b"." + body
    return body + b".\r\n"


class DotStuffer:
    """``dot_stuff`` for a body that comes in pieces: ``feed`` each piece, then ``end``.

    A line end (CRLF, or a bare CR or LF, made CRLF) that ends a piece is held back
    until the next piece shows whether a dot follows it; the start of the body counts
    as the start of a line.
    """

    def __init__(self) -> None:
        self._carry = b"\r\n"  # a line start before the body; its two bytes never leave
        self._strip = 2
        self._empty = True
        self._line_ended = True  # what has left ends with a CRLF

    def feed(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        self._empty = False
        data = self._carry + chunk
        # A line end at the end of a piece waits: the next piece may begin with a dot.
        cut = len(data) - (2 if data.endswith(b"\r\n") else 1 if data.endswith((b"\r", b"\n")) else 0)
        self._carry = data[cut:]
        out = _crlf_only(data[:cut]).replace(b"\r\n.", b"\r\n..")
        if self._strip and out:
            out, self._strip = out[self._strip:], 0
        if out:
            self._line_ended = out.endswith(b"\r\n")
        return out

    def end(self) -> bytes:
        if self._empty:
            return b".\r\n"
        # Held back is a line end (CRLF, bare CR or LF), or nothing: then the last line ends
        # with what has left, or is given its CRLF.
        if self._carry or not self._line_ended:
            return b"\r\n.\r\n"
        return b".\r\n"
