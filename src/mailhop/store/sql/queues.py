"""The administrator's view of the queue in SQL: queue states, summaries, messages, actions.

Get-Queue reads ``summary`` and ``states``; Get-Message ``messages``; Retry-Queue,
Suspend/Resume-Message and Remove-Message change rows in one transaction each.
"""

from __future__ import annotations

from mailhop.clock import Clock
from mailhop.errors import NotFoundError
from mailhop.model.message import FINAL, MessageInfo, NewMessage, RecipientRow
from mailhop.model.route import SUBMISSION_QUEUE, UNDEFINED
from mailhop.store.base import QueueState, QueueSummary
from mailhop.store.engine import Conn, Engine
from mailhop.store.sql.rows import insert_messages, message_info, placeholders, recipient_row


class SqlQueues:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.db = engine
        self.clock = clock

    async def states(self) -> list[QueueState]:
        def op(conn: Conn) -> list[QueueState]:
            return [
                QueueState(
                    queue=r["queue"], suspended=bool(r["suspended"]), retry_until=r["retry_until"],
                    retry_count=r["retry_count"], first_retry_at=r["first_retry_at"],
                    last_retry_at=r["last_retry_at"], last_error=r["last_error"],
                )
                for r in conn.execute("SELECT * FROM queues")
            ]

        return await self.db.read(op)

    async def set_state(self, state: QueueState) -> None:
        def op(conn: Conn) -> None:
            conn.execute(
                "INSERT INTO queues (queue, suspended, retry_until, retry_count, first_retry_at, "
                "last_retry_at, last_error, changed_at) VALUES (?,?,?,?,?,?,?,?) "
                "ON CONFLICT (queue) DO UPDATE SET suspended = excluded.suspended, "
                "retry_until = excluded.retry_until, retry_count = excluded.retry_count, "
                "first_retry_at = excluded.first_retry_at, last_retry_at = excluded.last_retry_at, "
                "last_error = excluded.last_error, changed_at = excluded.changed_at",
                (state.queue, int(state.suspended), state.retry_until, state.retry_count,
                 state.first_retry_at, state.last_retry_at, state.last_error, self.clock.now()),
            )

        await self.db.write(op)

    async def summary(self) -> list[QueueSummary]:
        def op(conn: Conn) -> list[QueueSummary]:
            rows = conn.execute(
                "SELECT queue, MAX(delivery_type) AS delivery_type, MAX(next_hop) AS next_hop, "
                "MAX(connector) AS connector, COUNT(DISTINCT message_id) AS messages, "
                "SUM(CASE WHEN status = 'active' THEN 1 ELSE 0 END) AS active, "
                "MIN(CASE WHEN status IN ('ready', 'retry') THEN next_attempt_at END) AS next_at, "
                "MAX(last_error) AS last_error FROM recipients "
                f"WHERE status NOT IN ({placeholders(FINAL)}) GROUP BY queue ORDER BY queue", FINAL)
            return [QueueSummary(r["queue"], r["delivery_type"], r["next_hop"], r["connector"], r["messages"],
                                 r["active"] or 0, r["next_at"], r["last_error"]) for r in rows]

        return await self.db.read(op)

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
            infos = {r["id"]: message_info(r) for r in conn.execute(
                f"SELECT * FROM messages WHERE id IN ({placeholders(ids)})", ids)}
            rcpts: dict[int, list[RecipientRow]] = {}
            for r in conn.execute(f"SELECT * FROM recipients WHERE message_id IN ({placeholders(ids)}) ORDER BY id",
                                  ids):
                rcpts.setdefault(r["message_id"], []).append(recipient_row(r))
            return [(infos[i], rcpts.get(i, [])) for i in ids if i in infos]

        return await self.db.read(op)

    async def get_message(self, message_id: int) -> tuple[MessageInfo, list[RecipientRow]]:
        def op(conn: Conn) -> tuple[MessageInfo, list[RecipientRow]]:
            row = conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"The message {message_id} was not found in any queue")
            rcpts = [recipient_row(r) for r in conn.execute(
                "SELECT * FROM recipients WHERE message_id = ? ORDER BY id", (message_id,))]
            return message_info(row), rcpts

        return await self.db.read(op)

    async def retry(self, queue: str, now: float) -> int:
        def op(conn: Conn) -> int:
            conn.execute("UPDATE queues SET retry_until = NULL, changed_at = ? WHERE lower(queue) = lower(?)",
                         (now, queue))
            return int(conn.execute(
                "UPDATE recipients SET next_attempt_at = ? WHERE lower(queue) = lower(?) "
                "AND status IN ('ready', 'retry')", (now, queue)).rowcount)

        return await self.db.write(op)

    async def suspend_message(self, message_id: int) -> int:
        def op(conn: Conn) -> int:
            _require_message(conn, message_id)
            return int(conn.execute(
                "UPDATE recipients SET status = 'suspended' WHERE message_id = ? AND status IN ('ready', 'retry')",
                (message_id,)).rowcount)

        return await self.db.write(op)

    async def resume_message(self, message_id: int, now: float) -> int:
        def op(conn: Conn) -> int:
            _require_message(conn, message_id)
            conn.execute("UPDATE messages SET crash_count = 0 WHERE id = ? AND EXISTS (SELECT 1 FROM recipients "
                         "WHERE message_id = ? AND status = 'poison')", (message_id, message_id))
            return int(conn.execute(
                "UPDATE recipients SET next_attempt_at = ?, "
                "status = CASE WHEN attempts > 0 THEN 'retry' ELSE 'ready' END, "
                "queue = CASE WHEN status = 'poison' THEN ? ELSE queue END, "
                "delivery_type = CASE WHEN status = 'poison' THEN ? ELSE delivery_type END, "
                "next_hop = CASE WHEN status = 'poison' THEN ? ELSE next_hop END, "
                "connector = CASE WHEN status = 'poison' THEN NULL ELSE connector END "
                "WHERE message_id = ? AND status IN ('suspended', 'poison')",
                (now, SUBMISSION_QUEUE, UNDEFINED, SUBMISSION_QUEUE, message_id)).rowcount)

        return await self.db.write(op)

    async def remove_message(self, message_id: int, ndr: NewMessage | None = None) -> None:
        def op(conn: Conn) -> None:
            _require_message(conn, message_id)
            conn.execute("DELETE FROM messages WHERE id = ?", (message_id,))
            if ndr is not None:
                insert_messages(conn, [ndr])

        await self.db.write(op)


def _require_message(conn: Conn, message_id: int) -> None:
    if conn.execute("SELECT 1 FROM messages WHERE id = ?", (message_id,)).fetchone() is None:
        raise NotFoundError(f"The message {message_id} was not found in any queue")
