"""Buffered input of an SMTP server session: command lines and DATA, with limits, as a stream.

``readline`` returns one command line (at most ``MAX_COMMAND_LINE`` bytes; a longer one
is skipped to its end and reported as ``LineTooLong``).  ``read_data`` reads a DATA
body up to the ``CRLF.CRLF`` terminator and hands it to a sink as it arrives: the
dot-stuffing removed (the first dot of any line that begins with one), bare CR and
bare LF made CRLF, and counted against the size limit.  Beyond
the limit nothing more is handed over, but the body is read to its terminator so the
session stays in step.  ``read_chunk`` reads a BDAT chunk (RFC 3030) of a given size, and
``LineEnds`` gives it the same CRLF normalization.  None keeps more than a read's worth plus
one line in memory, whatever the size of the message.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass

from mailhop.clock import Clock
from mailhop.errors import LineTooLong
from mailhop.smtp.deadline import ReadTimer

MAX_COMMAND_LINE = 12288  # the longest any command may be (AUTH, RFC 4954); each verb has its own
READ_CHUNK = 256 * 1024
# A body line longer than this is handed on in pieces (nothing in a line can end DATA).
LONG_LINE = 64 * 1024

# A CR or LF that is not half of a CRLF: made a CRLF before the body is stored (see below).
BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")


def crlf(data: bytes) -> bytes:
    """Bare CR and bare LF made CRLF: what is stored and relayed then has one reading for every
    next hop, so no "<LF>.<LF>" or "<CR>.<CR>" can end DATA early there (SMTP smuggling).
    Refusing them would bounce the many applications that write bare LF.  ``data`` must not
    end inside a CRLF (a CR waiting for its LF): the counts decide whether anything is bare."""
    pairs = data.count(b"\r\n")
    if data.count(b"\n") != pairs or data.count(b"\r") != pairs:
        return BARE.sub(b"\r\n", data)
    return data


@dataclass(slots=True)
class DataResult:
    size: int        # bytes handed to the sink (or that would have been, past the limit)
    too_big: bool


class Input:
    def __init__(self, reader: asyncio.StreamReader, clock: Clock, deadline: float | None = None) -> None:
        self.reader = reader
        self.buf = bytearray()
        self.clock = clock
        self.timer = ReadTimer(clock)
        self.deadline = deadline  # no read waits past it (the session's end), whatever its timeout

    async def _read(self, timeout: float) -> bytes:
        if self.deadline is not None:
            timeout = min(timeout, self.deadline - self.clock.now())
            if timeout <= 0:
                raise TimeoutError
        return await self.timer.run(self.reader.read(READ_CHUNK), timeout)

    async def _fill(self, timeout: float) -> bool:
        data = await self._read(timeout)
        if not data:
            return False
        self.buf += data
        return True

    async def readline(self, timeout: float) -> bytes | None:
        start = 0
        while True:
            idx = self.buf.find(b"\n", start)
            if idx >= 0:
                line = bytes(self.buf[: idx + 1])
                del self.buf[: idx + 1]
                if len(line) > MAX_COMMAND_LINE:
                    raise LineTooLong("command line too long")
                return line
            if len(self.buf) > MAX_COMMAND_LINE:
                # Discard up to the next newline, then report the error.
                self.buf.clear()
                while True:
                    if not await self._fill(timeout):
                        return None
                    nl = self.buf.find(b"\n")
                    if nl >= 0:
                        del self.buf[: nl + 1]
                        raise LineTooLong("command line too long")
                    self.buf.clear()
            start = max(0, len(self.buf) - 1)
            if not await self._fill(timeout):
                return None

    async def read_data(self, write: Callable[[bytes], None], limit: int | None,
                        timeout: float) -> DataResult | None:
        """Stream a DATA body into ``write``; None when the peer closed before the terminator."""
        # The CRLF that ended the DATA command line is the first CRLF of the terminator and
        # of every dot-stuffed line: scanning starts with it and it is dropped on output.
        pending = bytearray(b"\r\n") + self.buf
        self.buf.clear()
        out = _Body(write, limit)
        while True:
            idx = pending.find(b"\r\n.\r\n")
            if idx >= 0:
                out.segment(pending[:idx + 2])
                self.buf += pending[idx + 5:]
                return DataResult(out.size, out.too_big)
            # Hand on whole lines: keep from the last CRLF, which may begin the terminator
            # or a dot-stuffed line; a very long line goes on in pieces, keeping a final CR.
            cut = pending.rfind(b"\r\n")
            if len(pending) - max(cut, 0) > LONG_LINE:  # the unfinished last line is long: on with it too
                cut = len(pending) - (1 if pending.endswith(b"\r") else 0)
            if cut > 0:
                out.segment(pending[:cut])
                del pending[:cut]
            data = await self._read(timeout)
            if not data:
                return None
            pending += data

    async def read_chunk(self, size: int, write: Callable[[bytes], None], timeout: float) -> bool:
        """Hand the next ``size`` bytes (a BDAT chunk, RFC 3030) to ``write`` as they arrive;
        False when the peer closed first.  Never more than a read's worth in memory."""
        left = size
        while left:
            if not self.buf and not await self._fill(timeout):
                return False
            piece = bytes(self.buf[:left])
            del self.buf[:left]
            left -= len(piece)
            write(piece)
        return True


class LineEnds:
    """Bare CR and bare LF made CRLF across the chunks of a BDAT body, as ``read_data`` does
    for DATA (a CR that ends one chunk waits for the next: its LF may begin it)."""

    def __init__(self, write: Callable[[bytes], None], binary: bool = False) -> None:
        self.write = write
        self.cr = False
        self.binary = binary  # BODY=BINARYMIME: nothing is changed

    def __call__(self, data: bytes) -> None:
        if self.binary:
            self.write(data)
            return
        if self.cr:
            data = b"\r" + data
            self.cr = False
        if data.endswith(b"\r"):
            data, self.cr = data[:-1], True
        data = crlf(data)
        if data:
            self.write(data)

    def close(self) -> None:
        if self.cr:  # the body ended with a bare CR
            self.cr = False
            self.write(b"\r\n")


class _Body:
    """Segments of a body (each begins at a line start) to the sink, unstuffed and counted."""

    def __init__(self, write: Callable[[bytes], None], limit: int | None) -> None:
        self.write = write
        self.limit = limit
        self.size = 0
        self.too_big = False
        self.first = True

    def segment(self, raw: bytearray) -> None:
        # RFC 5321 4.5.2: the first dot of a line that begins with one goes (as Postfix does);
        # the terminator's lone dot never reaches here.
        # A segment never ends inside a CRLF, so the count in crlf() is exact.
        data = crlf(bytes(raw).replace(b"\r\n.", b"\r\n"))
        if self.first:
            data = data[2:]  # the DATA command's CRLF
            self.first = False
        self.size += len(data)
        if self.limit is not None and self.size > self.limit:
            self.too_big = True
        if not self.too_big and data:
            self.write(data)
