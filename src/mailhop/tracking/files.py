"""Log files that rotate by day and size and are pruned by age and total size.

Names are ``<PREFIX>yyyymmdd-N.log`` (UTC date), as Exchange names its logs.
Lines written in one turn of the event loop leave in one ``write``.  A failed
write is reported on the logger and never raised: logs never stop mail flow.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

from mailhop.clock import Clock
from mailhop.private import FILE_MODE, private_dir

log = logging.getLogger(__name__)


class RotatingLog:
    def __init__(self, directory: Path, prefix: str, max_file_size: int | None, max_age: float,
                 max_directory_size: int | None, clock: Clock, header: Callable[[], str] | None = None) -> None:
        self.directory = directory
        self.clock = clock
        self.prefix = prefix
        self.max_file_size = max_file_size
        self.max_age = max_age
        self.max_directory_size = max_directory_size
        self.header = header
        self.pattern = re.compile(rf"^{re.escape(prefix)}(\d{{8}})-(\d+)\.log$")
        self._pending: list[str] = []
        self._scheduled = False
        self._path: Path | None = None
        self._size = 0
        self._day = ""
        self._fd: int | None = None
        self._fd_path: Path | None = None

    def write(self, line: str) -> None:
        self._pending.append(line)
        if not self._scheduled:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
                self._scheduled = True
            except RuntimeError:
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        data = ("\n".join(self._pending) + "\n").encode("utf-8")
        self._pending.clear()
        try:
            path, fresh = self._current(len(data))
            if fresh and self.header is not None:
                data = self.header().encode("utf-8") + data
            if self._fd is None or self._fd_path != path:  # kept open between flushes; reopened on rotation
                self.close()
                self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
                self._fd_path = path
            os.write(self._fd, data)
            self._size += len(data)
        except OSError as exc:
            log.error("%s log write failed: %s", self.prefix, exc)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._fd_path = None

    def _current(self, incoming: int) -> tuple[Path, bool]:
        day = dt.datetime.fromtimestamp(self.clock.now(), dt.UTC).strftime("%Y%m%d")
        limit = self.max_file_size
        if self._path is not None and day == self._day and (limit is None or self._size + incoming <= limit):
            return self._path, False
        private_dir(self.directory)
        numbers = [int(m.group(2)) for p in self.directory.iterdir()
                   if (m := self.pattern.match(p.name)) and m.group(1) == day]
        number = max(numbers, default=1)
        path = self.directory / f"{self.prefix}{day}-{number}.log"
        size = path.stat().st_size if path.exists() else 0
        if limit is not None and size and size + incoming > limit:
            number += 1
            path = self.directory / f"{self.prefix}{day}-{number}.log"
            size = 0
        self._path, self._size, self._day = path, size, day
        self._prune()
        return path, size == 0

    def files(self) -> list[Path]:
        if not self.directory.exists():
            return []
        def key(p: Path) -> tuple[str, int]:
            m = self.pattern.match(p.name)
            assert m
            return m.group(1), int(m.group(2))
        return sorted((p for p in self.directory.iterdir() if self.pattern.match(p.name)), key=key)

    def _prune(self) -> None:
        """Oldest first: files whose day ended more than ``max_age`` ago, then beyond the size limit.

        Ages come from the day in the file's name (the clock's day when it was written),
        not from the file system's times, so the injected clock decides alone.
        """
        files = self.files()
        cutoff = self.clock.now() - self.max_age
        total = sum(p.stat().st_size for p in files)
        for p in files:
            if p == self._path:
                continue
            size = p.stat().st_size
            too_big = self.max_directory_size is not None and total > self.max_directory_size
            m = self.pattern.match(p.name)
            assert m
            day_end = dt.datetime.strptime(m.group(1), "%Y%m%d").replace(tzinfo=dt.UTC).timestamp() + 86400
            if day_end < cutoff or too_big:
                total -= size
                try:
                    p.unlink()
                except OSError:
                    pass
