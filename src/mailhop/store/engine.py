"""The store's engine: one writer thread with group commit, one reader thread, dialects.

Writes go through one writer thread that batches whatever is waiting into one
transaction and one commit (group commit): under load, many SMTP sessions' messages
share a commit, and each caller's future resolves only after that commit is durable.
Each operation runs in a savepoint, so one failing operation does not undo the others
of its batch.  Reads that may be large (bodies) or slow (queue views) go through a
second thread with its own connection.  A ``Dialect`` supplies what differs between
the engines: connecting, the transaction start, row locking for claims (``FOR UPDATE
SKIP LOCKED`` on PostgreSQL), the writer lock between processes, and error kinds.

Failures of the database (I/O error, disk full, lock timeout, a lost connection)
become ``StoreError`` (a duplicate key ``ConflictError``) and change nothing; a lost
connection is re-opened for the next batch.  The repositories (``store.sql``) hold the
queries; this module knows none of them.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

from mailhop.errors import ConflictError, StorageFull, StoreError

T = TypeVar("T")
_Op = Callable[["Conn"], Any]

BATCH_LIMIT = 512


class Row(Protocol):
    def __getitem__(self, key: int | str) -> Any: ...
    def keys(self) -> Any: ...


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Any: ...


class Conn(Protocol):
    """The part of a DB-API connection the store uses (sqlite3's shape; PostgreSQL is adapted)."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Cursor: ...
    def executemany(self, sql: str, params: Iterable[Sequence[Any]], /) -> Any: ...
    def close(self) -> None: ...


class Dialect(Protocol):
    name: str
    least: str          # the two-argument minimum: MIN (SQLite) or LEAST (PostgreSQL)
    for_update: str     # appended to the claim's SELECT: row locks that skip locked rows

    def connect(self) -> Conn: ...
    def writer_lock(self) -> AbstractContextManager[None]: ...
    def begin(self, writer: bool) -> str: ...
    def is_conflict(self, exc: BaseException) -> bool: ...
    def is_error(self, exc: BaseException) -> bool: ...
    def is_disconnect(self, exc: BaseException) -> bool: ...
    def is_full(self, exc: BaseException) -> bool: ...
    def schema_version(self, conn: Conn) -> int: ...


class DbThread:
    """One connection owned by one thread; callers await results from the event loop."""

    def __init__(self, dialect: Dialect, name: str, writer: bool) -> None:
        self._dialect = dialect
        self._writer = writer
        self._queue: queue.SimpleQueue[tuple[_Op, asyncio.Future[Any], asyncio.AbstractEventLoop] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise StoreError(f"cannot open the {self._dialect.name} store: {self._error}")

    async def call(self, op: Callable[[Conn], T]) -> T:
        if not self._thread.is_alive():
            raise StoreError(f"the {self._dialect.name} store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((op, future, loop))
        return await future

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _run(self) -> None:
        conn: Conn | None
        try:
            conn = self._dialect.connect()
        except Exception as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            if self._writer:
                with self._dialect.writer_lock():
                    # Ops that came in while this thread waited for the lock join the batch.
                    while len(batch) < BATCH_LIMIT:
                        try:
                            nxt = self._queue.get_nowait()
                        except queue.Empty:
                            break
                        if nxt is None:
                            stopping = True
                            break
                        batch.append(nxt)
                    conn = self._run_batch(conn, batch)
            else:
                conn = self._run_batch(conn, batch)
        if conn is not None:
            conn.close()

    def _run_batch(self, conn: Conn | None, batch: list[tuple[_Op, asyncio.Future[Any], asyncio.AbstractEventLoop]]
                   ) -> Conn | None:
        """Execute a batch; the connection to use next (None: re-open it for the next batch)."""
        if conn is None:
            try:
                conn = self._dialect.connect()
            except Exception as exc:
                failure = StoreError(f"cannot reach the {self._dialect.name} store: {exc}")
                for _, future, loop in batch:
                    loop.call_soon_threadsafe(_resolve, future, None, failure)
                return None
        if not self._execute(conn, batch):
            try:
                conn.close()
            except Exception:
                pass
            return None  # re-opened for the next batch
        return conn

    def _execute(self, conn: Conn, batch: list[tuple[_Op, asyncio.Future[Any], asyncio.AbstractEventLoop]]) -> bool:
        """Run a batch in one transaction; False when the connection is unusable."""
        dialect = self._dialect
        results: list[tuple[Any, BaseException | None]] = []
        healthy = True
        try:
            conn.execute(dialect.begin(self._writer))
            for op, _, _ in batch:
                conn.execute("SAVEPOINT op")
                try:
                    results.append((op(conn), None))
                    conn.execute("RELEASE SAVEPOINT op")
                except Exception as exc:  # each op fails alone; the others of the batch commit
                    if dialect.is_disconnect(exc):
                        raise
                    conn.execute("ROLLBACK TO SAVEPOINT op")
                    conn.execute("RELEASE SAVEPOINT op")
                    results.append((None, _translate(dialect, exc)))
            conn.execute("COMMIT")
        except Exception as exc:
            if not dialect.is_error(exc):
                raise
            healthy = not dialect.is_disconnect(exc)
            if healthy:
                try:
                    conn.execute("ROLLBACK")
                except Exception:
                    pass
            kind = StorageFull if dialect.is_full(exc) else StoreError
            failure: BaseException = kind(f"store transaction failed: {exc}")
            results = [(None, failure) for _ in batch]
        _resolve_all([(future, loop, result, error) for (_, future, loop), (result, error)
                      in zip(batch, results, strict=True)])
        return healthy


def _translate(dialect: Dialect, exc: Exception) -> BaseException:
    if dialect.is_conflict(exc):
        return ConflictError(str(exc))
    if dialect.is_error(exc):
        return (StorageFull if dialect.is_full(exc) else StoreError)(f"store operation failed: {exc}")
    return exc


def _resolve_all(done: list[tuple[asyncio.Future[Any], asyncio.AbstractEventLoop, Any, BaseException | None]]) -> None:
    """Wake each event loop once per batch, not once per operation (each wake-up is a syscall)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
    for future, loop, result, error in done:
        by_loop.setdefault(loop, []).append((future, result, error))
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve_many, items)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass


def _resolve_many(items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in items:
        _resolve(future, result, error)


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)




class Engine:
    """The two threads of one store; repositories call ``write`` and ``read``."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._writer = DbThread(dialect, f"mailhop-{dialect.name}-writer", writer=True)
        self._reader = DbThread(dialect, f"mailhop-{dialect.name}-reader", writer=False)

    async def start(self, prepare: Callable[[Conn], None]) -> None:
        """Open both connections; ``prepare`` (the migrations) runs first, in the writer."""
        self._writer.start()
        try:
            await self._writer.call(prepare)
            self._reader.start()
        except BaseException:
            self._writer.stop()
            raise

    async def write(self, op: Callable[[Conn], T]) -> T:
        return await self._writer.call(op)

    async def read(self, op: Callable[[Conn], T]) -> T:
        return await self._reader.call(op)

    async def close(self) -> None:
        await asyncio.to_thread(self._writer.stop)
        await asyncio.to_thread(self._reader.stop)
