"""Rows of the message tables and the statements more than one repository needs.

Messages, their bodies and recipients are written here (``insert_messages``, used by
submit, record and remove-with-NDR), and finished messages deleted (``delete_done``);
``Row``s become ``MessageInfo`` and ``RecipientRow`` values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mailhop.model.message import FINAL, MessageInfo, NewMessage, RecipientRow
from mailhop.store.base import PART_SIZE
from mailhop.store.engine import Conn, Row

MESSAGE_COLUMNS = (
    "id", "sender", "received_at", "size", "origin_server", "expires_at", "delay_at",
    "message_id", "subject", "client_ip", "client_hostname", "receive_connector",
    "auth_user", "kind", "smtputf8", "eight_bit", "crash_count", "require_tls", "tls_optional", "dsn", "binary_mime",
)
RECIPIENT_COLUMNS = (
    "id", "message_id", "address", "status", "queue", "delivery_type", "next_hop",
    "next_attempt_at", "connector", "attempts", "last_error", "lease_owner", "dsn",
)


def placeholders(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def connector_filter(column: str, connectors: Sequence[str]) -> str:
    """Recipients waiting for routing (no connector) or for one of ``connectors``."""
    if not connectors:  # "IN ()" is not SQL everywhere
        return f"{column} IS NULL"
    return f"({column} IS NULL OR {column} IN ({placeholders(connectors)}))"


def message_info(row: Row) -> MessageInfo:
    data = {k: row[k] for k in MESSAGE_COLUMNS}
    data["smtputf8"] = bool(data["smtputf8"])
    data["eight_bit"] = bool(data["eight_bit"])
    data["require_tls"] = bool(data["require_tls"])
    data["tls_optional"] = bool(data["tls_optional"])
    data["binary_mime"] = bool(data["binary_mime"])
    return MessageInfo(**data)


def recipient_row(row: Row) -> RecipientRow:
    return RecipientRow(**{k: row[k] for k in RECIPIENT_COLUMNS})


def insert_messages(conn: Conn, messages: Sequence[NewMessage]) -> None:
    conn.executemany(
        f"INSERT INTO messages ({','.join(MESSAGE_COLUMNS)}) VALUES ({placeholders(MESSAGE_COLUMNS)})",
        [
            (
                m.info.id, m.info.sender, m.info.received_at, m.info.size, m.info.origin_server,
                m.info.expires_at, m.info.delay_at, m.info.message_id, m.info.subject,
                m.info.client_ip, m.info.client_hostname, m.info.receive_connector,
                m.info.auth_user, m.info.kind, int(m.info.smtputf8), int(m.info.eight_bit),
                m.info.crash_count, int(m.info.require_tls), int(m.info.tls_optional), m.info.dsn,
                int(m.info.binary_mime),
            )
            for m in messages
        ],
    )
    in_memory = [(m.info.id, m.body) for m in messages if isinstance(m.body, bytes)]
    conn.executemany("INSERT INTO bodies (message_id, data) VALUES (?, ?)", in_memory)
    for m in messages:
        if not isinstance(m.body, bytes):
            _insert_parts(conn, m.info.id, m.body.parts(PART_SIZE))
    conn.executemany(
        "INSERT INTO recipients (id, message_id, address, status, queue, connector, delivery_type, "
        "next_hop, next_attempt_at, attempts, last_error, lease_owner, lease_until, dsn) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            (
                r.id, m.info.id, r.address, r.status, r.queue, r.connector, r.delivery_type, r.next_hop,
                r.next_attempt_at, r.attempts, r.last_error, r.lease_owner, r.lease_until, r.dsn,
            )
            for m in messages
            for r in m.recipients
        ],
    )
    delete_done(conn, [r.id for m in messages for r in m.recipients if r.status in FINAL])


def _insert_parts(conn: Conn, message_id: int, parts: Any) -> None:
    """Part 0 in ``bodies``, the rest in ``body_parts``: one part in memory at a time."""
    count = 0
    for index, data in enumerate(parts):
        if index == 0:
            conn.execute("INSERT INTO bodies (message_id, data) VALUES (?, ?)", (message_id, data))
        else:
            conn.execute("INSERT INTO body_parts (message_id, part, data) VALUES (?, ?, ?)",
                         (message_id, index, data))
        count += 1
    if count == 0:
        conn.execute("INSERT INTO bodies (message_id, data) VALUES (?, ?)", (message_id, b""))


def delete_done(conn: Conn, final_recipients: Sequence[int]) -> None:
    """Delete the messages of these (final) recipients that have no recipient left to handle;
    their bodies and recipient rows go with them (ON DELETE CASCADE)."""
    for start in range(0, len(final_recipients), 1000):  # bounded statement parameters
        chunk = final_recipients[start:start + 1000]
        conn.execute(
            f"DELETE FROM messages WHERE id IN (SELECT message_id FROM recipients WHERE id IN ({placeholders(chunk)})) "
            f"AND NOT EXISTS (SELECT 1 FROM recipients WHERE message_id = messages.id "
            f"AND status NOT IN ({placeholders(FINAL)}))",
            (*chunk, *FINAL),
        )
