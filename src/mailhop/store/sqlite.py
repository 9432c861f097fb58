"""The embedded store: one SQLite file in WAL mode, durable on every commit.

``synchronous=FULL``: the WAL is fsync'd at every commit, so a committed message
survives a crash of the process or of the machine (NORMAL would not be durable in
WAL mode).  Other processes open the same file: mailhop's own writers (worker
processes, the CLI) take turns through a kernel lock around each transaction
(``writer_lock``), anything else waits for SQLite's write lock (``busy_timeout``).
The SQL itself lives in ``store.sql``, the threads in ``store.engine``.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mailhop.clock import SYSTEM_CLOCK, Clock
from mailhop.errors import StoreError
from mailhop.private import create_private, private_dir
from mailhop.store.engine import Conn
from mailhop.store.sql import SqlStore

BUSY_TIMEOUT_MS = 15000


def _wal(conn: sqlite3.Connection) -> None:
    """WAL mode, set once for the file.  Setting it needs an exclusive lock that SQLite's busy
    handler does not wait for: two worker processes opening a new store at once got "database
    is locked" and the server stopped.  So it is set only when the file is not in WAL mode yet,
    and a lock held by another opener is waited out."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class SqliteDialect:
    name = "sqlite"
    least = "MIN"
    for_update = ""  # the writer thread and SQLite's write lock already serialize claims

    def __init__(self, path: Path) -> None:
        self.path = path

    def connect(self) -> Conn:
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _wal(conn)
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.row_factory = sqlite3.Row
        return conn  # type: ignore[return-value]

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Held by a worker's writer thread around each transaction.

        With ``[server] workers`` above 1 several processes write the same file. SQLite's
        own busy handler polls with sleeps of 1 ms and more, so a commit that waits for
        another worker's commit waits longer than that commit took; a kernel lock
        (flock) wakes the waiter the moment the holder lets go, in arrival order.
        """
        fd = os.open(f"{self.path}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def begin(self, writer: bool) -> str:
        return "BEGIN IMMEDIATE" if writer else "BEGIN"

    def is_conflict(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)

    def is_error(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.Error)

    def is_disconnect(self, exc: BaseException) -> bool:
        return False

    def is_full(self, exc: BaseException) -> bool:
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL

    def schema_version(self, conn: Conn) -> int:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone() is None:
            return 0
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is not None:
            return int(row[0])
        return int(conn.execute("PRAGMA user_version").fetchone()[0])  # stores made before meta held it


class SqliteStore(SqlStore):
    def __init__(self, path: Path, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(SqliteDialect(path), clock)
        self.path = path

    @classmethod
    async def open(cls, path: Path, clock: Clock = SYSTEM_CLOCK) -> SqliteStore:
        try:
            private_dir(path.parent)
            create_private(path)  # SQLite gives its -wal and -shm files the database's mode
        except OSError as exc:
            raise StoreError(f"cannot create {path.parent}: {exc.strerror}") from None
        store = cls(path, clock)
        await store._start()
        _fsync_dir(path.parent)  # the new files' directory entries are durable too
        return store


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
