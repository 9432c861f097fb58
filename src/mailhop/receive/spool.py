"""One transaction's body while it arrives: in memory while small, in a spool file when not.

Up to ``SPILL`` bytes stay in memory (most mail: one store row, no file at all).
Beyond that the body goes to an unnamed file in ``<data_dir>/spool`` (created 0600
and unlinked at once, so a crash leaves nothing behind and no other process sees
it); only its first ``HEAD_LIMIT`` bytes stay in memory, for the header block.  The
spool is not what makes mail durable: the store's commit is, and the store reads a
spooled body part by part from the file while it commits (``StampedBody``).

When the server signs mail (``dkim``), the spool also feeds what it is written to a
``MessageHash``: the DKIM body hash is ready when the body is, without a second read.

Write errors of the file (disk full) are kept and raised as ``StoreError`` when the
body is handed over, so the client gets a 4xx and keeps its message.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

from mailhop.dkim.canon import MessageHash
from mailhop.errors import StorageFull, StoreError
from mailhop.private import private_dir

SPILL = 256 * 1024
PART = 1024 * 1024
HEAD_LIMIT = 1024 * 1024  # the header block must end within this (receive: 552 5.3.4 otherwise)


class Spool:
    def __init__(self, directory: Path, spill: int = SPILL, hash_body: bool = False) -> None:
        self.directory = directory
        self.spill = spill
        self.size = 0
        self._hash = MessageHash() if hash_body else None
        self._digest: bytes | None = None
        self._memory = bytearray()
        self._head = bytearray()
        self._fd: int | None = None
        self._spilled = False
        self._error: OSError | None = None

    # --- a DataSink --------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self._hash is not None:
            self._hash.update(data)
        if not self._spilled:
            if len(self._memory) + len(data) <= self.spill:
                self._memory += data
                return
            self._spilled = True
            self._head = self._memory[:HEAD_LIMIT]
            try:
                self._fd = self._open()
                _write_all(self._fd, self._memory)
            except OSError as exc:
                self._error = exc
            self._memory = bytearray()
        if len(self._head) < HEAD_LIMIT:
            self._head += data[:HEAD_LIMIT - len(self._head)]
        if self._fd is not None and self._error is None:
            try:
                _write_all(self._fd, data)
            except OSError as exc:
                self._error = exc

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._memory = bytearray()

    # --- what the receive side reads ------------------------------------------------------------

    @property
    def in_memory(self) -> bool:
        return not self._spilled

    @property
    def head(self) -> bytes:
        """The first ``HEAD_LIMIT`` bytes (all of it when in memory)."""
        return bytes(self._memory) if not self._spilled else bytes(self._head)

    def data(self) -> bytes:
        """The whole body; only for a body kept in memory."""
        assert not self._spilled
        return bytes(self._memory)

    def check(self) -> None:
        if self._error is not None:
            kind = StorageFull if self._error.errno in (errno.ENOSPC, errno.EDQUOT) else StoreError
            raise kind(f"the spool file could not be written: {self._error.strerror}")

    def body_hash(self) -> bytes:
        """The DKIM relaxed body hash of what was written (read back if it was not hashed
        on the way in)."""
        if self._digest is not None:
            return self._digest
        if self._hash is None:
            self._hash = MessageHash()
            if not self._spilled:
                self._hash.update(bytes(self._memory))
            else:
                for offset in range(0, self.size, PART):
                    self._hash.update(self.read(offset, PART))
        self._digest = self._hash.digest()
        return self._digest

    def read(self, offset: int, size: int) -> bytes:
        assert self._fd is not None
        return os.pread(self._fd, size, offset)

    def _open(self) -> int:
        private_dir(self.directory)
        try:
            return os.open(self.directory, os.O_TMPFILE | os.O_RDWR, 0o600)
        except (OSError, AttributeError):  # a file system without O_TMPFILE: create, then unlink
            path = self.directory / f"spool-{os.getpid()}-{id(self)}.tmp"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            os.unlink(path)
            return fd


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class StampedBody:
    """A spooled body as stored: ``prefix``, the spool from ``skip`` on, then ``suffix``.

    The receive side stamps a message (Received: first, Message-ID/Date at the end of the
    header block) without rewriting the file; this is the ``SpooledBody`` the store reads.
    """

    def __init__(self, spool: Spool, prefix: bytes, skip: int, suffix: bytes) -> None:
        self.spool = spool
        self.prefix = prefix
        self.skip = skip
        self.suffix = suffix
        self.size = len(prefix) + (spool.size - skip) + len(suffix)

    def parts(self, part_size: int) -> Iterator[bytes]:
        pending = bytearray(self.prefix)
        offset = self.skip
        while offset < self.spool.size:
            wanted = part_size - len(pending)
            data = self.spool.read(offset, min(wanted, self.spool.size - offset))
            if not data:
                raise StoreError("the spool file ended early")
            offset += len(data)
            pending += data
            if len(pending) >= part_size:
                yield bytes(pending)
                pending = bytearray()
        pending += self.suffix
        while pending:
            yield bytes(pending[:part_size])
            del pending[:part_size]
