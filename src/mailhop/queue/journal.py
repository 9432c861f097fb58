"""The crash journal: which messages this process is handling right now.

Poison detection needs to know, after a crash, which messages were being
handled when the process died, and whether one was handled alone.  Each delivery
appends ``B <id>`` when it starts (``A <id>`` when it starts alone, a suspect
isolated by ``PoisonGuard``) and ``E <id>`` when its outcome is known.  The writes are not fsync'd: a crashed
process leaves the page cache intact, and only a process crash (not a power
loss) says anything about a message.  On start, ids begun but not ended are the
messages that were in flight at the crash.  The file is rewritten with only the
live entries when it grows, and emptied on a clean stop.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from pathlib import Path

from mailhop.private import FILE_MODE, private_dir

log = logging.getLogger(__name__)
COMPACT_AT = 4 * 1024 * 1024


class CrashJournal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.active: Counter[int] = Counter()
        self._fd: int | None = None
        self._written = 0
        self._pending: list[str] = []
        self.alone: set[int] = set()       # in flight alone at the crash, after recover()
        self._alone_now: set[int] = set()  # begun alone and not ended

    def recover(self) -> list[int]:
        """Messages in flight when the previous process died (empty after a clean stop)."""
        begun: Counter[int] = Counter()
        alone: set[int] = set()
        if self.path.exists():
            for line in self.path.read_text(encoding="ascii", errors="replace").splitlines():
                kind, _, value = line.partition(" ")
                if not value.strip().isdigit():
                    continue
                mid = int(value)
                if kind in ("B", "A"):
                    begun[mid] += 1
                    if kind == "A":
                        alone.add(mid)
                elif kind == "E" and begun[mid] > 0:
                    begun[mid] -= 1
                    if not begun[mid]:
                        alone.discard(mid)
        private_dir(self.path.parent)
        self._open(truncate=True)
        crashed = sorted(mid for mid, n in begun.items() if n > 0)
        # Alone means alone: the only message in flight when the process died.
        self.alone = set(crashed) if len(crashed) == 1 and crashed[0] in alone else set()
        return crashed

    def _open(self, truncate: bool) -> None:
        if self._fd is not None:
            os.close(self._fd)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if truncate else 0)
        self._fd = os.open(self.path, flags, 0o600)
        self._written = 0

    def _write(self, text: str) -> None:
        # Entries written in one turn of the event loop leave in one write, before any
        # delivery task of that turn runs (the flush is scheduled first).
        self._pending.append(text)
        if len(self._pending) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:
                self.flush()

    def flush(self) -> None:
        if self._fd is None or not self._pending:
            self._pending.clear()
            return
        data = "".join(self._pending).encode("ascii")
        self._pending.clear()
        try:
            os.write(self._fd, data)
            self._written += len(data)
            if self._written > COMPACT_AT:
                self._compact()
        except OSError as exc:
            # A full disk: these entries are lost, which only weakens poison detection after a
            # crash that comes at the same time (a message may be suspected, never lost).
            log.warning("crash journal write failed: %s", exc)

    def begin(self, message_id: int, alone: bool = False) -> None:
        self.active[message_id] += 1
        if alone:
            self._alone_now.add(message_id)
        self._write(f"{'A' if alone else 'B'} {message_id}\n")

    def end(self, message_id: int) -> None:
        if self.active[message_id] > 0:
            self.active[message_id] -= 1
            if not self.active[message_id]:
                del self.active[message_id]
                self._alone_now.discard(message_id)
        self._write(f"E {message_id}\n")

    def _compact(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write("".join(f"{'A' if mid in self._alone_now else 'B'} {mid}\n" * n
                             for mid, n in self.active.items()))
        os.replace(tmp, self.path)
        self._open(truncate=False)

    def close(self) -> None:
        """A clean stop: nothing is in flight any more."""
        self._pending.clear()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.path.write_text("", encoding="ascii")
