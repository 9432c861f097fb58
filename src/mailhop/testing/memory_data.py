"""What the in-memory store keeps, shared by its repositories (see ``mailhop.testing.store``)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

from mailhop.errors import ConflictError
from mailhop.model.message import (
    FINAL,
    READY,
    RETRY,
    MessageInfo,
    NewMessage,
    RecipientRow,
)
from mailhop.store.base import (
    PART_SIZE,
    AdminToken,
    QueueState,
    ServerInfo,
)


@dataclasses.dataclass(slots=True)
class MemoryRecipient:
    row: RecipientRow
    lease_until: float | None = None


class MemoryData:
    """Everything stored: shared by the repositories of one MemoryStore."""

    def __init__(self) -> None:
        self.connectors: dict[str, dict[str, Any]] = {}  # guid -> {"name", "data", "secret"}
        self.version = 0
        self.messages: dict[int, MessageInfo] = {}
        self.bodies: dict[int, list[bytes]] = {}
        self.recipients: dict[int, MemoryRecipient] = {}
        self.queue_states: dict[str, QueueState] = {}
        self.servers: dict[str, ServerInfo] = {}
        self.tokens: dict[str, tuple[str, AdminToken]] = {}
        self.dkim: dict[str, dict[str, Any]] = {}  # domain -> {data: JSON text, private_keys}
        self.dkim_version = 0

    def rows_of(self, message_id: int) -> list[RecipientRow]:
        return sorted((copy.copy(r.row) for r in self.recipients.values() if r.row.message_id == message_id),
                      key=lambda r: r.id)

    def check_new(self, messages: Sequence[NewMessage]) -> None:
        """ConflictError, before anything changes, when an id is taken (the primary keys' check)."""
        ids = [m.info.id for m in messages]
        rids = [r.id for m in messages for r in m.recipients]
        if (len(set(ids)) != len(ids) or any(i in self.messages for i in ids)
                or len(set(rids)) != len(rids) or any(i in self.recipients for i in rids)):
            raise ConflictError("UNIQUE constraint failed: a message or recipient id exists")

    def insert(self, messages: Sequence[NewMessage]) -> None:
        self.check_new(messages)
        for m in messages:
            self.messages[m.info.id] = copy.copy(m.info)
            if isinstance(m.body, bytes):
                self.bodies[m.info.id] = [m.body]
            else:
                self.bodies[m.info.id] = list(m.body.parts(PART_SIZE)) or [b""]
            for r in m.recipients:
                self.recipients[r.id] = MemoryRecipient(RecipientRow(
                    r.id, m.info.id, r.address, r.status, r.queue, r.delivery_type, r.next_hop, r.next_attempt_at,
                    r.connector, r.attempts, r.last_error, r.lease_owner), r.lease_until)
        self.delete_done([r.id for m in messages for r in m.recipients if r.status in FINAL])

    def delete_message(self, message_id: int) -> None:
        self.messages.pop(message_id, None)
        self.bodies.pop(message_id, None)
        for rid in [rid for rid, r in self.recipients.items() if r.row.message_id == message_id]:
            del self.recipients[rid]

    def delete_done(self, final_recipients: Sequence[int]) -> None:
        for mid in {self.recipients[rid].row.message_id for rid in final_recipients if rid in self.recipients}:
            if all(r.row.status in FINAL for r in self.recipients.values() if r.row.message_id == mid):
                self.delete_message(mid)


def free(r: MemoryRecipient, now: float) -> None:
    r.row.status = RETRY if r.row.attempts else READY
    r.row.lease_owner = None
    r.lease_until = None
    r.row.next_attempt_at = min(r.row.next_attempt_at, now)
