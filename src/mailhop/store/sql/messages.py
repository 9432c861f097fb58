"""The queue in SQL as delivery sees it: submit, claim with leases, bodies, record, recovery.

Claims lock what they take with the dialect's ``FOR UPDATE SKIP LOCKED`` (PostgreSQL)
or the single writer (SQLite), so two servers never lease the same recipient.  A body
is read part by part (``body_parts``), so delivering a large message never loads it
whole; a message removed while its body is being read fails the read (NotFoundError)
rather than yielding a truncated body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from mailhop.errors import NotFoundError
from mailhop.model.ids import ID_TIME_SHIFT
from mailhop.model.message import ACTIVE, FINAL, Claim, NewMessage, RecordBatch
from mailhop.model.route import POISON_QUEUE, SUBMISSION_QUEUE, UNDEFINED, UNREACHABLE_QUEUE
from mailhop.outcome import POISON as POISON_REPLY
from mailhop.store.engine import Conn, Engine
from mailhop.store.sql.rows import (
    connector_filter,
    delete_done,
    insert_messages,
    message_info,
    placeholders,
    recipient_row,
)

_FREE = "status = CASE WHEN attempts > 0 THEN 'retry' ELSE 'ready' END, lease_owner = NULL, lease_until = NULL"


class SqlMessages:
    def __init__(self, engine: Engine) -> None:
        self.db = engine
        self._least = engine.dialect.least
        self._for_update = engine.dialect.for_update

    async def submit(self, messages: Sequence[NewMessage]) -> None:
        await self.db.write(lambda conn: insert_messages(conn, messages))

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
                # (the counter's parity repeats); anything left waiting too long is anyone's.
                where.append(f"((r.message_id / {1 << ID_TIME_SHIFT}) % ? = ? OR r.next_attempt_at <= ?)")
                params.extend((share[0], share[1], stale_before))
            if connectors is not None:
                where.append(connector_filter("r.connector", connectors))
                params.extend(connectors)
            if queues_excluded:
                where.append(f"r.queue NOT IN ({placeholders(queues_excluded)})")
                params.extend(queues_excluded)
            ids = [row[0] for row in conn.execute(
                f"SELECT r.id FROM recipients r WHERE {' AND '.join(where)} "
                f"ORDER BY r.next_attempt_at LIMIT ?{self._for_update}", (*params, limit),
            )]
            if not ids:
                return []
            conn.execute(
                f"UPDATE recipients SET status = ?, lease_owner = ?, lease_until = ? WHERE id IN ({placeholders(ids)})",
                (ACTIVE, owner, lease_until, *ids),
            )
            rows = [recipient_row(r) for r in conn.execute(
                f"SELECT * FROM recipients WHERE id IN ({placeholders(ids)}) ORDER BY id", ids)]
            message_ids = sorted({r.message_id for r in rows})
            infos = {m.id: m for m in (message_info(r) for r in conn.execute(
                f"SELECT * FROM messages WHERE id IN ({placeholders(message_ids)})", message_ids))}
            claims: dict[int, Claim] = {}
            for r in rows:
                claims.setdefault(r.message_id, Claim(infos[r.message_id], [])).recipients.append(r)
            return list(claims.values())

        return await self.db.write(op)

    async def body(self, message_id: int) -> bytes:
        return b"".join([part async for part in self.body_parts(message_id)])

    async def body_parts(self, message_id: int) -> AsyncIterator[bytes]:
        def first(conn: Conn) -> tuple[bytes, int]:
            row = conn.execute("SELECT data FROM bodies WHERE message_id = ?", (message_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"message {message_id} has no body in the store")
            more = conn.execute("SELECT COUNT(*) FROM body_parts WHERE message_id = ?", (message_id,)).fetchone()
            return bytes(row["data"]), int(more[0])

        def part(index: int) -> Any:
            def op(conn: Conn) -> bytes:
                row = conn.execute("SELECT data FROM body_parts WHERE message_id = ? AND part = ?",
                                   (message_id, index)).fetchone()
                if row is None:
                    raise NotFoundError(f"message {message_id} was removed while its body was read")
                return bytes(row["data"])
            return op

        data, more = await self.db.read(first)
        yield data
        for index in range(1, more + 1):
            yield await self.db.read(part(index))

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
                    "next_hop = COALESCE(?, next_hop) WHERE id = ? AND (CAST(? AS TEXT) IS NULL OR lease_owner = ?)",
                    [
                        (o.status, o.next_attempt_at, o.last_error, int(o.attempted), o.queue,
                         int(o.clear_connector), o.connector, o.delivery_type, o.next_hop, o.recipient_id,
                         batch.owner, batch.owner)
                        for o in batch.outcomes
                    ],
                )
            if batch.delay_notified:
                conn.execute(
                    f"UPDATE messages SET delay_at = NULL WHERE id IN ({placeholders(batch.delay_notified)})",
                    batch.delay_notified,
                )
            new = batch.new_messages
            if new and batch.again:
                ids = [m.info.id for m in new]
                stored = {r[0] for r in conn.execute(f"SELECT id FROM messages WHERE id IN ({placeholders(ids)})", ids)}
                new = [m for m in new if m.info.id not in stored]
            if new:
                insert_messages(conn, new)
            delete_done(conn, [o.recipient_id for o in batch.outcomes if o.status in FINAL])

        await self.db.write(op)

    async def release(self, owner: str, now: float) -> int:
        def op(conn: Conn) -> int:
            return int(conn.execute(
                f"UPDATE recipients SET {_FREE}, next_attempt_at = {self._least}(next_attempt_at, ?) "
                "WHERE status = 'active' AND lease_owner = ?",
                (now, owner),
            ).rowcount)

        return await self.db.write(op)

    async def recover(self, owner_prefix: str, incarnation: str, now: float) -> list[int]:
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
                f"UPDATE recipients SET {_FREE}, next_attempt_at = {self._least}(next_attempt_at, ?) WHERE {cond}",
                (now, *params),
            )
            return ids

        return await self.db.write(op)

    async def resubmit(self, live_connectors: Sequence[str], now: float,
                       removed: Sequence[str] | None = None) -> int:
        """Without ``removed`` (at start) the connectors that waiting recipients name are read
        from the ``recipients_connector`` index and compared with ``live_connectors``; either
        way the queue is never scanned row by row."""
        def op(conn: Conn) -> int:
            setting = ("UPDATE recipients SET queue = ?, connector = NULL, delivery_type = ?, next_hop = ?, "
                       "next_attempt_at = ? WHERE status IN ('ready', 'retry') AND ")
            values = (SUBMISSION_QUEUE, UNDEFINED, SUBMISSION_QUEUE, now)
            moved = int(conn.execute(setting + "queue = ? AND connector IS NULL",
                                     (*values, UNREACHABLE_QUEUE)).rowcount)
            if removed is None:
                live = set(live_connectors)
                stale = [row[0] for row in conn.execute(  # the recipients_connector index, not the queue
                    "SELECT DISTINCT COALESCE(connector, '') FROM recipients WHERE status IN ('ready', 'retry')")
                    if row[0] and row[0] not in live]
            else:
                stale = list(removed)
            if stale:
                moved += int(conn.execute(setting + f"COALESCE(connector, '') IN ({placeholders(stale)})",
                                          (*values, *stale)).rowcount)
            return moved

        return await self.db.write(op)

    async def next_due(self, connectors: Sequence[str] | None) -> float | None:
        def op(conn: Conn) -> float | None:
            sql = "SELECT MIN(next_attempt_at) FROM recipients WHERE status IN ('ready', 'retry')"
            params: list[Any] = []
            if connectors is not None:
                sql += " AND " + connector_filter("connector", connectors)
                params.extend(connectors)
            row = conn.execute(sql, params).fetchone()
            return None if row[0] is None else float(row[0])

        return await self.db.read(op)

    async def mark_suspect(self, message_ids: Sequence[int]) -> None:
        def op(conn: Conn) -> None:
            if message_ids:
                conn.execute(f"UPDATE messages SET crash_count = 1 WHERE id IN ({placeholders(message_ids)}) "
                             "AND crash_count = 0", message_ids)

        await self.db.write(op)

    async def mark_crashed(self, message_ids: Sequence[int], threshold: int) -> list[int]:
        def op(conn: Conn) -> list[int]:
            if not message_ids:
                return []
            marks = placeholders(message_ids)
            conn.execute(f"UPDATE messages SET crash_count = crash_count + 1 WHERE id IN ({marks})", message_ids)
            poisoned = [r[0] for r in conn.execute(
                f"SELECT id FROM messages WHERE id IN ({marks}) AND crash_count >= ?", (*message_ids, threshold))]
            if poisoned:
                conn.execute(
                    f"UPDATE recipients SET status = 'poison', queue = ?, delivery_type = ?, next_hop = ?, "
                    f"lease_owner = NULL, lease_until = NULL, last_error = ? WHERE message_id IN "
                    f"({placeholders(poisoned)}) AND status NOT IN ({placeholders(FINAL)})",
                    (POISON_QUEUE, UNDEFINED, POISON_QUEUE, str(POISON_REPLY), *poisoned, *FINAL))
            return poisoned

        return await self.db.write(op)
