"""The SQL store: everything mailhop keeps, in SQLite or PostgreSQL, with one body of SQL.

Writes go through one writer thread that batches whatever is waiting into one
transaction and one commit (group commit): under load, many SMTP sessions' messages
share a commit, and each caller's future resolves only after that commit is durable.
Each operation runs in a savepoint, so one failing operation does not undo the others
of its batch.  Reads that may be large (bodies) or slow (queue views) go through a
second thread with its own connection.  A ``Dialect`` supplies what differs between
the engines: connecting, placeholders, the transaction start, row locking for claims
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL), and the migrations folder.

Failures of the database (I/O error, disk full, lock timeout, a lost connection)
become ``StoreError`` and change nothing; a lost connection is re-opened for the next
batch.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from importlib import resources
from typing import Any, Protocol, TypeVar

from mailhop.errors import ConflictError, NotFoundError, StoreError
from mailhop.model.connector import SendConnector, from_exchange, to_exchange
from mailhop.model.message import (
    ACTIVE,
    FINAL,
    Claim,
    MessageInfo,
    NewMessage,
    RecipientRow,
    RecordBatch,
)
from mailhop.model.route import POISON_QUEUE, SUBMISSION_QUEUE, UNDEFINED, UNREACHABLE_QUEUE
from mailhop.outcome import POISON as POISON_REPLY
from mailhop.store.base import AdminToken, QueueState, QueueSummary, ServerInfo

T = TypeVar("T")
_Op = Callable[["Conn"], Any]

BATCH_LIMIT = 512

_MESSAGE_COLUMNS = (
    "id", "sender", "received_at", "size", "origin_server", "expires_at", "delay_at",
    "message_id", "subject", "client_ip", "client_hostname", "receive_connector",
    "auth_user", "kind", "smtputf8", "eight_bit", "crash_count",
)
_RECIPIENT_COLUMNS = (
    "id", "message_id", "address", "status", "queue", "delivery_type", "next_hop",
    "next_attempt_at", "connector", "attempts", "last_error", "lease_owner",
)


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
    def schema_version(self, conn: Conn) -> int: ...


def migrations(folder: str) -> list[tuple[int, str]]:
    root = resources.files("mailhop.store").joinpath("migrations", folder)
    out = []
    for entry in root.iterdir():
        if entry.name.endswith(".sql"):
            out.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(out)


def split_sql(sql: str) -> list[str]:
    """Statements of a migration file: split at semicolons that end a line."""
    statements, current = [], []
    for line in sql.splitlines():
        if line.strip().startswith("--"):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current).strip().rstrip(";"))
            current = []
    if "".join(current).strip():
        statements.append("\n".join(current).strip())
    return statements


def migrate(conn: Conn, dialect: Dialect) -> None:
    version = dialect.schema_version(conn)
    for number, sql in migrations(dialect.name):
        if number > version:
            for statement in split_sql(sql):
                conn.execute(statement)
            conn.execute("DELETE FROM meta WHERE key = 'schema_version'")
            conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(number),))


class _DbThread:
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
            failure: BaseException = StoreError(f"store transaction failed: {exc}")
            results = [(None, failure) for _ in batch]
        _resolve_all([(future, loop, result, error) for (_, future, loop), (result, error)
                      in zip(batch, results, strict=True)])
        return healthy


def _translate(dialect: Dialect, exc: Exception) -> BaseException:
    if dialect.is_conflict(exc):
        return ConflictError(str(exc))
    if dialect.is_error(exc):
        return StoreError(f"store operation failed: {exc}")
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


def _in(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def _connector_filter(column: str, connectors: Sequence[str]) -> str:
    """Recipients waiting for routing (no connector) or for one of ``connectors``."""
    if not connectors:  # "IN ()" is not SQL everywhere
        return f"{column} IS NULL"
    return f"({column} IS NULL OR {column} IN ({_in(connectors)}))"


def _message(row: Row) -> MessageInfo:
    data = {k: row[k] for k in _MESSAGE_COLUMNS}
    data["smtputf8"] = bool(data["smtputf8"])
    data["eight_bit"] = bool(data["eight_bit"])
    return MessageInfo(**data)


def _recipient(row: Row) -> RecipientRow:
    return RecipientRow(**{k: row[k] for k in _RECIPIENT_COLUMNS})


def _insert_messages(conn: Conn, messages: Sequence[NewMessage]) -> None:
    conn.executemany(
        f"INSERT INTO messages ({','.join(_MESSAGE_COLUMNS)}) VALUES ({_in(_MESSAGE_COLUMNS)})",
        [
            (
                m.info.id, m.info.sender, m.info.received_at, m.info.size, m.info.origin_server,
                m.info.expires_at, m.info.delay_at, m.info.message_id, m.info.subject,
                m.info.client_ip, m.info.client_hostname, m.info.receive_connector,
                m.info.auth_user, m.info.kind, int(m.info.smtputf8), int(m.info.eight_bit),
                m.info.crash_count,
            )
            for m in messages
        ],
    )
    conn.executemany(
        "INSERT INTO bodies (message_id, data) VALUES (?, ?)", [(m.info.id, m.body) for m in messages]
    )
    conn.executemany(
        "INSERT INTO recipients (id, message_id, address, status, queue, connector, delivery_type, "
        "next_hop, next_attempt_at, attempts, last_error, lease_owner, lease_until) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            (
                r.id, m.info.id, r.address, r.status, r.queue, r.connector, r.delivery_type, r.next_hop,
                r.next_attempt_at, r.attempts, r.last_error, r.lease_owner, r.lease_until,
            )
            for m in messages
            for r in m.recipients
        ],
    )
    _delete_done(conn, [r.id for m in messages for r in m.recipients if r.status in FINAL])


def _delete_done(conn: Conn, final_recipients: Sequence[int]) -> None:
    """Delete the messages of these (final) recipients that have no recipient left to handle;
    their bodies and recipient rows go with them (ON DELETE CASCADE)."""
    for start in range(0, len(final_recipients), 1000):  # bounded statement parameters
        chunk = final_recipients[start:start + 1000]
        conn.execute(
            f"DELETE FROM messages WHERE id IN (SELECT message_id FROM recipients WHERE id IN ({_in(chunk)})) "
            f"AND NOT EXISTS (SELECT 1 FROM recipients WHERE message_id = messages.id AND status NOT IN ({_in(FINAL)}))",
            (*chunk, *FINAL),
        )


def _bump_config(conn: Conn) -> None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'config_version'").fetchone()
    conn.execute("UPDATE meta SET value = ? WHERE key = 'config_version'", (str(int(row[0]) + 1),))


class SqlStore:
    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._writer = _DbThread(dialect, f"mailhop-{dialect.name}-writer", writer=True)
        self._reader = _DbThread(dialect, f"mailhop-{dialect.name}-reader", writer=False)
        self._least = dialect.least

    async def _start(self) -> None:
        self._writer.start()
        try:
            await self._writer.call(lambda conn: migrate(conn, self.dialect))
            self._reader.start()
        except BaseException:
            self._writer.stop()
            raise

    async def close(self) -> None:
        await asyncio.to_thread(self._writer.stop)
        await asyncio.to_thread(self._reader.stop)

    # --- send connectors ---------------------------------------------------------

    async def list_connectors(self) -> list[SendConnector]:
        def op(conn: Conn) -> list[SendConnector]:
            rows = conn.execute("SELECT data FROM send_connectors ORDER BY lower(name)").fetchall()
            return [from_exchange(json.loads(r["data"])) for r in rows]

        return await self._reader.call(op)

    async def get_connector(self, name: str) -> SendConnector:
        return await self._reader.call(lambda conn: _get_connector(conn, name))

    async def create_connector(self, connector: SendConnector, secret: str | None = None) -> None:
        def op(conn: Conn) -> None:
            if conn.execute("SELECT 1 FROM send_connectors WHERE lower(name) = lower(?)", (connector.name,)).fetchone():
                raise ConflictError(f"A send connector named '{connector.name}' already exists")
            conn.execute(
                "INSERT INTO send_connectors (guid, name, data, secret, changed_at) VALUES (?,?,?,?,?)",
                (connector.guid, connector.name, json.dumps(to_exchange(connector)), secret, time.time()),
            )
            _bump_config(conn)

        await self._writer.call(op)

    async def update_connector(
        self, name: str, change: Callable[[SendConnector], SendConnector], secret: str | None = None
    ) -> SendConnector:
        def op(conn: Conn) -> SendConnector:
            current = _get_connector(conn, name)
            updated = change(current)
            if updated.name.lower() != current.name.lower() and conn.execute(
                "SELECT 1 FROM send_connectors WHERE lower(name) = lower(?) AND guid != ?", (updated.name, current.guid)
            ).fetchone():
                raise ConflictError(f"A send connector named '{updated.name}' already exists")
            conn.execute(
                "UPDATE send_connectors SET name = ?, data = ?, secret = COALESCE(?, secret), "
                "changed_at = ? WHERE guid = ?",
                (updated.name, json.dumps(to_exchange(updated)), secret, time.time(), current.guid),
            )
            _bump_config(conn)
            return updated

        return await self._writer.call(op)

    async def delete_connector(self, name: str) -> SendConnector:
        def op(conn: Conn) -> SendConnector:
            current = _get_connector(conn, name)
            conn.execute("DELETE FROM send_connectors WHERE guid = ?", (current.guid,))
            _bump_config(conn)
            return current

        return await self._writer.call(op)

    async def connector_secret(self, guid: str) -> str | None:
        def op(conn: Conn) -> str | None:
            row = conn.execute("SELECT secret FROM send_connectors WHERE guid = ?", (guid,)).fetchone()
            return row["secret"] if row else None

        return await self._reader.call(op)

    async def config_version(self) -> int:
        def op(conn: Conn) -> int:
            row = conn.execute("SELECT value FROM meta WHERE key = 'config_version'").fetchone()
            return int(row["value"])

        return await self._reader.call(op)

    # --- messages ------------------------------------------------------------------

    async def submit(self, messages: Sequence[NewMessage]) -> None:
        await self._writer.call(lambda conn: _insert_messages(conn, messages))

    async def claim(
        self, owner: str, now: float, lease_until: float, limit: int,
        connectors: Sequence[str] | None, queues_excluded: Sequence[str] = (),
        share: tuple[int, int] | None = None, stale_before: float = 0.0,
    ) -> list[Claim]:
        def op(conn: Conn) -> list[Claim]:
            where = ["r.status IN ('ready', 'retry')", "r.next_attempt_at <= ?",
                     "r.queue NOT IN (SELECT queue FROM queues WHERE suspended = 1)"]
            params: list[Any] = [now]
            if share is not None and share[0] > 1:
                # This server's share of the messages, by the millisecond the id was made in
                # (ids are milliseconds << 22 | a counter, and the counter's parity repeats);
                # anything left waiting too long is anyone's.
                where.append("((r.message_id / 4194304) % ? = ? OR r.next_attempt_at <= ?)")
                params.extend((share[0], share[1], stale_before))
            if connectors is not None:
                where.append(_connector_filter("r.connector", connectors))
                params.extend(connectors)
            if queues_excluded:
                where.append(f"r.queue NOT IN ({_in(queues_excluded)})")
                params.extend(queues_excluded)
            ids = [row[0] for row in conn.execute(
                f"SELECT r.id FROM recipients r WHERE {' AND '.join(where)} "
                f"ORDER BY r.next_attempt_at LIMIT ?{self.dialect.for_update}", (*params, limit),
            )]
            if not ids:
                return []
            conn.execute(
                f"UPDATE recipients SET status = ?, lease_owner = ?, lease_until = ? WHERE id IN ({_in(ids)})",
                (ACTIVE, owner, lease_until, *ids),
            )
            rows = [_recipient(r) for r in conn.execute(
                f"SELECT * FROM recipients WHERE id IN ({_in(ids)}) ORDER BY id", ids)]
            message_ids = sorted({r.message_id for r in rows})
            infos = {m.id: m for m in (_message(r) for r in conn.execute(
                f"SELECT * FROM messages WHERE id IN ({_in(message_ids)})", message_ids))}
            claims: dict[int, Claim] = {}
            for r in rows:
                claims.setdefault(r.message_id, Claim(infos[r.message_id], [])).recipients.append(r)
            return list(claims.values())

        return await self._writer.call(op)

    async def load_body(self, message_id: int) -> bytes:
        def op(conn: Conn) -> bytes:
            row = conn.execute("SELECT data FROM bodies WHERE message_id = ?", (message_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"message {message_id} has no body in the store")
            return bytes(row["data"])

        return await self._reader.call(op)

    async def record(self, batch: RecordBatch) -> None:
        def op(conn: Conn) -> None:
            if batch.outcomes:
                conn.executemany(
                    "UPDATE recipients SET status = ?, "
                    "next_attempt_at = COALESCE(?, next_attempt_at), "
                    "last_error = COALESCE(?, last_error), "
                    "attempts = attempts + ?, lease_owner = NULL, lease_until = NULL, "
                    "queue = COALESCE(?, queue), "
                    "connector = CASE WHEN ? = 1 THEN NULL ELSE COALESCE(?, connector) END, "
                    "delivery_type = COALESCE(?, delivery_type), "
                    "next_hop = COALESCE(?, next_hop) WHERE id = ?",
                    [
                        (o.status, o.next_attempt_at, o.last_error, int(o.attempted), o.queue,
                         int(o.clear_connector), o.connector, o.delivery_type, o.next_hop, o.recipient_id)
                        for o in batch.outcomes
                    ],
                )
            if batch.delay_notified:
                conn.execute(
                    f"UPDATE messages SET delay_at = NULL WHERE id IN ({_in(batch.delay_notified)})",
                    batch.delay_notified,
                )
            if batch.new_messages:
                _insert_messages(conn, batch.new_messages)
            _delete_done(conn, [o.recipient_id for o in batch.outcomes if o.status in FINAL])

        await self._writer.call(op)

    async def release(self, owner: str, now: float) -> int:
        def op(conn: Conn) -> int:
            return conn.execute(
                "UPDATE recipients SET status = CASE WHEN attempts > 0 THEN 'retry' ELSE 'ready' END, "
                f"lease_owner = NULL, lease_until = NULL, next_attempt_at = {self._least}(next_attempt_at, ?) "
                "WHERE status = 'active' AND lease_owner = ?",
                (now, owner),
            ).rowcount

        return await self._writer.call(op)

    async def recover(self, owner_prefix: str, incarnation: str, now: float) -> list[int]:
        """Free leases of dead earlier incarnations (owners ``<owner_prefix>/...`` other than
        ``incarnation``) and every expired lease.

        Returns the ids of the messages whose recipients were freed.
        """
        def op(conn: Conn) -> list[int]:
            cond = ("status = 'active' AND ((lease_owner LIKE ? ESCAPE '\\' AND lease_owner != ?) "
                    "OR lease_until < ?)")
            prefix = owner_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
            params = (prefix, incarnation, now)
            # No DISTINCT: with it SQLite walks the whole recipients_message index; without it,
            # only the small partial index of active leases.
            ids = list(dict.fromkeys(r[0] for r in conn.execute(f"SELECT message_id FROM recipients WHERE {cond}",
                                                                  params)))
            conn.execute(
                "UPDATE recipients SET status = CASE WHEN attempts > 0 THEN 'retry' ELSE 'ready' END, "
                f"lease_owner = NULL, lease_until = NULL, next_attempt_at = {self._least}(next_attempt_at, ?) WHERE {cond}",
                (now, *params),
            )
            return ids

        return await self._writer.call(op)

    async def resubmit(self, live_connectors: Sequence[str], now: float,
                       removed: Sequence[str] | None = None) -> int:
        """Send waiting recipients back to routing: Unreachable ones, and those of
        connectors that were deleted or disabled (Exchange resubmits on such changes).

        ``removed`` names the connectors gone since the caller last looked; without it
        (at start) the connectors that waiting recipients name are read from the
        ``recipients_connector`` index and compared with ``live_connectors``.  Either way
        the queue is never scanned row by row.
        """
        def op(conn: Conn) -> int:
            setting = ("UPDATE recipients SET queue = ?, connector = NULL, delivery_type = ?, next_hop = ?, "
                       "next_attempt_at = ? WHERE status IN ('ready', 'retry') AND ")
            values = (SUBMISSION_QUEUE, UNDEFINED, SUBMISSION_QUEUE, now)
            moved = conn.execute(setting + "queue = ? AND connector IS NULL", (*values, UNREACHABLE_QUEUE)).rowcount
            if removed is None:
                live = set(live_connectors)
                stale = [row[0] for row in conn.execute(  # the recipients_connector index, not the queue
                    "SELECT DISTINCT COALESCE(connector, '') FROM recipients WHERE status IN ('ready', 'retry')")
                    if row[0] and row[0] not in live]
            else:
                stale = list(removed)
            if stale:
                moved += conn.execute(setting + f"COALESCE(connector, '') IN ({_in(stale)})",
                                      (*values, *stale)).rowcount
            return moved

        return await self._writer.call(op)

    async def next_due(self, connectors: Sequence[str] | None) -> float | None:
        def op(conn: Conn) -> float | None:
            sql = "SELECT MIN(next_attempt_at) FROM recipients WHERE status IN ('ready', 'retry')"
            params: list[Any] = []
            if connectors is not None:
                sql += " AND " + _connector_filter("connector", connectors)
                params.extend(connectors)
            row = conn.execute(sql, params).fetchone()
            return None if row[0] is None else float(row[0])

        return await self._reader.call(op)

    # --- queues ----------------------------------------------------------------------

    async def queue_states(self) -> list[QueueState]:
        def op(conn: Conn) -> list[QueueState]:
            return [
                QueueState(
                    queue=r["queue"], suspended=bool(r["suspended"]), retry_until=r["retry_until"],
                    retry_count=r["retry_count"], first_retry_at=r["first_retry_at"],
                    last_retry_at=r["last_retry_at"], last_error=r["last_error"],
                )
                for r in conn.execute("SELECT * FROM queues")
            ]

        return await self._reader.call(op)

    async def set_queue_state(self, state: QueueState) -> None:
        def op(conn: Conn) -> None:
            conn.execute(
                "INSERT INTO queues (queue, suspended, retry_until, retry_count, first_retry_at, "
                "last_retry_at, last_error, changed_at) VALUES (?,?,?,?,?,?,?,?) "
                "ON CONFLICT (queue) DO UPDATE SET suspended = excluded.suspended, "
                "retry_until = excluded.retry_until, retry_count = excluded.retry_count, "
                "first_retry_at = excluded.first_retry_at, last_retry_at = excluded.last_retry_at, "
                "last_error = excluded.last_error, changed_at = excluded.changed_at",
                (state.queue, int(state.suspended), state.retry_until, state.retry_count,
                 state.first_retry_at, state.last_retry_at, state.last_error, time.time()),
            )

        await self._writer.call(op)

    async def messages(self, queue: str | None = None, limit: int = 1000,
                       after: int = 0) -> list[tuple[MessageInfo, list[RecipientRow]]]:
        def op(conn: Conn) -> list[tuple[MessageInfo, list[RecipientRow]]]:
            if queue is None:
                ids = [r[0] for r in conn.execute(
                    "SELECT id FROM messages WHERE id > ? ORDER BY id LIMIT ?", (after, limit))]
            else:
                ids = [r[0] for r in conn.execute(
                    "SELECT DISTINCT message_id FROM recipients WHERE lower(queue) = lower(?) AND message_id > ? "
                    "ORDER BY message_id LIMIT ?", (queue, after, limit))]
            if not ids:
                return []
            infos = {r["id"]: _message(r) for r in conn.execute(
                f"SELECT * FROM messages WHERE id IN ({_in(ids)})", ids)}
            rcpts: dict[int, list[RecipientRow]] = {}
            for r in conn.execute(f"SELECT * FROM recipients WHERE message_id IN ({_in(ids)}) ORDER BY id", ids):
                rcpts.setdefault(r["message_id"], []).append(_recipient(r))
            return [(infos[i], rcpts.get(i, [])) for i in ids if i in infos]

        return await self._reader.call(op)

    async def get_message(self, message_id: int) -> tuple[MessageInfo, list[RecipientRow]]:
        def op(conn: Conn) -> tuple[MessageInfo, list[RecipientRow]]:
            row = conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"The message {message_id} was not found in any queue")
            rcpts = [_recipient(r) for r in conn.execute(
                "SELECT * FROM recipients WHERE message_id = ? ORDER BY id", (message_id,))]
            return _message(row), rcpts

        return await self._reader.call(op)

    async def queue_summary(self) -> list[QueueSummary]:
        def op(conn: Conn) -> list[QueueSummary]:
            rows = conn.execute(
                "SELECT queue, MAX(delivery_type) AS delivery_type, MAX(next_hop) AS next_hop, "
                "MAX(connector) AS connector, COUNT(DISTINCT message_id) AS messages, "
                "SUM(CASE WHEN status = 'active' THEN 1 ELSE 0 END) AS active, "
                "MIN(CASE WHEN status IN ('ready', 'retry') THEN next_attempt_at END) AS next_at, "
                "MAX(last_error) AS last_error FROM recipients "
                f"WHERE status NOT IN ({_in(FINAL)}) GROUP BY queue ORDER BY queue", FINAL)
            return [QueueSummary(r["queue"], r["delivery_type"], r["next_hop"], r["connector"], r["messages"],
                                 r["active"] or 0, r["next_at"], r["last_error"]) for r in rows]

        return await self._reader.call(op)

    async def retry_queue(self, queue: str, now: float) -> int:
        def op(conn: Conn) -> int:
            conn.execute("UPDATE queues SET retry_until = NULL, changed_at = ? WHERE lower(queue) = lower(?)",
                         (now, queue))
            return conn.execute(
                "UPDATE recipients SET next_attempt_at = ? WHERE lower(queue) = lower(?) "
                "AND status IN ('ready', 'retry')", (now, queue)).rowcount

        return await self._writer.call(op)

    async def suspend_message(self, message_id: int) -> int:
        def op(conn: Conn) -> int:
            _require_message(conn, message_id)
            return conn.execute(
                "UPDATE recipients SET status = 'suspended' WHERE message_id = ? AND status IN ('ready', 'retry')",
                (message_id,)).rowcount

        return await self._writer.call(op)

    async def resume_message(self, message_id: int, now: float) -> int:
        """Resume a suspended message; a poison message goes back to routing (Exchange's Resume-Message)."""
        def op(conn: Conn) -> int:
            _require_message(conn, message_id)
            conn.execute("UPDATE messages SET crash_count = 0 WHERE id = ? AND EXISTS (SELECT 1 FROM recipients "
                         "WHERE message_id = ? AND status = 'poison')", (message_id, message_id))
            return conn.execute(
                "UPDATE recipients SET next_attempt_at = ?, "
                "status = CASE WHEN attempts > 0 THEN 'retry' ELSE 'ready' END, "
                "queue = CASE WHEN status = 'poison' THEN ? ELSE queue END, "
                "delivery_type = CASE WHEN status = 'poison' THEN ? ELSE delivery_type END, "
                "next_hop = CASE WHEN status = 'poison' THEN ? ELSE next_hop END, "
                "connector = CASE WHEN status = 'poison' THEN NULL ELSE connector END "
                "WHERE message_id = ? AND status IN ('suspended', 'poison')",
                (now, SUBMISSION_QUEUE, UNDEFINED, SUBMISSION_QUEUE, message_id)).rowcount

        return await self._writer.call(op)

    async def remove_message(self, message_id: int, ndr: NewMessage | None = None) -> None:
        def op(conn: Conn) -> None:
            _require_message(conn, message_id)
            conn.execute("DELETE FROM messages WHERE id = ?", (message_id,))
            if ndr is not None:
                _insert_messages(conn, [ndr])

        await self._writer.call(op)

    async def mark_crashed(self, message_ids: Sequence[int], threshold: int) -> list[int]:
        """Count a crash against each message; those reaching ``threshold`` go to the Poison queue.

        Returns the ids of the messages that became poison.
        """
        def op(conn: Conn) -> list[int]:
            if not message_ids:
                return []
            conn.execute(f"UPDATE messages SET crash_count = crash_count + 1 WHERE id IN ({_in(message_ids)})",
                         message_ids)
            poisoned = [r[0] for r in conn.execute(
                f"SELECT id FROM messages WHERE id IN ({_in(message_ids)}) AND crash_count >= ?",
                (*message_ids, threshold))]
            if poisoned:
                conn.execute(
                    f"UPDATE recipients SET status = 'poison', queue = ?, delivery_type = ?, next_hop = ?, "
                    f"lease_owner = NULL, lease_until = NULL, last_error = ? WHERE message_id IN ({_in(poisoned)}) "
                    f"AND status NOT IN ({_in(FINAL)})",
                    (POISON_QUEUE, UNDEFINED, POISON_QUEUE, str(POISON_REPLY), *poisoned, *FINAL))
            return poisoned

        return await self._writer.call(op)

    # --- servers ---------------------------------------------------------------------

    async def heartbeat(self, server: ServerInfo, lease_until: float) -> None:
        def op(conn: Conn) -> None:
            conn.execute(
                "INSERT INTO servers (name, incarnation, fqdn, state, started_at, heartbeat_at) "
                "VALUES (?,?,?,?,?,?) ON CONFLICT (name) DO UPDATE SET incarnation = excluded.incarnation, "
                "fqdn = excluded.fqdn, state = excluded.state, started_at = excluded.started_at, "
                "heartbeat_at = excluded.heartbeat_at",
                (server.name, server.incarnation, server.fqdn, server.state, server.started_at, server.heartbeat_at),
            )
            conn.execute(
                "UPDATE recipients SET lease_until = ? WHERE status = 'active' AND lease_owner = ?",
                (lease_until, server.incarnation),
            )

        await self._writer.call(op)

    async def request_server_state(self, name: str, state: str | None) -> ServerInfo:
        def op(conn: Conn) -> ServerInfo:
            row = conn.execute("SELECT * FROM servers WHERE lower(name) = lower(?)", (name,)).fetchone()
            if row is None:
                raise NotFoundError(f"The transport server '{name}' has never run with this store")
            conn.execute("UPDATE servers SET requested_state = ? WHERE name = ?", (state, row["name"]))
            return ServerInfo(**{**dict(zip(row.keys(), row, strict=True)), "requested_state": state})

        return await self._writer.call(op)

    # --- admin API tokens ---------------------------------------------------------------

    async def create_token(self, name: str, token_hash: str, read_only: bool) -> AdminToken:
        def op(conn: Conn) -> AdminToken:
            if conn.execute("SELECT 1 FROM admin_tokens WHERE lower(name) = lower(?)", (name,)).fetchone():
                raise ConflictError(f"A token named '{name}' already exists")
            now = time.time()
            conn.execute("INSERT INTO admin_tokens (name, token_hash, read_only, created_at) VALUES (?,?,?,?)",
                         (name, token_hash, int(read_only), now))
            return AdminToken(name, read_only, now)

        return await self._writer.call(op)

    async def tokens(self) -> list[AdminToken]:
        def op(conn: Conn) -> list[AdminToken]:
            return [AdminToken(r["name"], bool(r["read_only"]), r["created_at"])
                    for r in conn.execute("SELECT * FROM admin_tokens ORDER BY lower(name)")]

        return await self._reader.call(op)

    async def delete_token(self, name: str) -> None:
        def op(conn: Conn) -> None:
            if conn.execute("DELETE FROM admin_tokens WHERE lower(name) = lower(?)", (name,)).rowcount == 0:
                raise NotFoundError(f"There is no token named '{name}'")

        await self._writer.call(op)

    async def token_by_hash(self, token_hash: str) -> AdminToken | None:
        def op(conn: Conn) -> AdminToken | None:
            r = conn.execute("SELECT * FROM admin_tokens WHERE token_hash = ?", (token_hash,)).fetchone()
            return AdminToken(r["name"], bool(r["read_only"]), r["created_at"]) if r else None

        return await self._reader.call(op)

    async def active_by_owner(self) -> dict[str, int]:
        def op(conn: Conn) -> dict[str, int]:
            return {r[0]: int(r[1]) for r in conn.execute(
                "SELECT lease_owner, COUNT(*) FROM recipients WHERE status = 'active' GROUP BY lease_owner")}

        return await self._reader.call(op)

    async def servers(self) -> list[ServerInfo]:
        def op(conn: Conn) -> list[ServerInfo]:
            return [ServerInfo(**dict(zip(r.keys(), r, strict=True)))
                    for r in conn.execute("SELECT * FROM servers ORDER BY name")]

        return await self._reader.call(op)


def _require_message(conn: Conn, message_id: int) -> None:
    if conn.execute("SELECT 1 FROM messages WHERE id = ?", (message_id,)).fetchone() is None:
        raise NotFoundError(f"The message {message_id} was not found in any queue")


def _get_connector(conn: Conn, name: str) -> SendConnector:
    row = conn.execute(
        "SELECT data FROM send_connectors WHERE lower(name) = lower(?) OR guid = ?", (name.strip(), name.strip())
    ).fetchone()
    if row is None:
        raise NotFoundError(f"The send connector '{name}' was not found")
    return from_exchange(json.loads(row["data"]))
