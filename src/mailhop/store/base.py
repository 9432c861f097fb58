"""The Store protocol: everything mailhop keeps, behind one contract.

Contract (tests/contract runs the same suite against every implementation):
- ``submit`` returns only after the messages, their bodies and recipients are
  durable (committed and on disk); it is atomic: all the messages or none.
- ``record`` applies outcomes, new messages (NDRs) and flags in one transaction,
  and deletes every message left with no recipient that is not final.
- ``claim`` leases due recipients (status ready/retry, next attempt due, queue
  not suspended, lease free or expired) to one owner, marks them active, and
  never hands the same recipient to two owners whose leases are both live.
- Connector changes bump ``config_version`` so every server sees them.
- Errors of the database are raised as ``StoreError``; a failed call changed nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from mailhop.model.connector import SendConnector
from mailhop.model.message import Claim, MessageInfo, NewMessage, RecipientRow, RecordBatch


@dataclass(frozen=True, slots=True)
class QueueState:
    queue: str
    suspended: bool = False
    retry_until: float | None = None
    retry_count: int = 0
    first_retry_at: float | None = None
    last_retry_at: float | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class QueueSummary:
    """What the recipients waiting in one queue add up to."""

    queue: str
    delivery_type: str
    next_hop: str
    connector: str | None
    message_count: int
    active_count: int
    next_attempt_at: float | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class AdminToken:
    name: str
    read_only: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class ServerInfo:
    name: str
    incarnation: str
    fqdn: str
    state: str
    started_at: float
    heartbeat_at: float
    requested_state: str | None = None  # set by an administrator: "Draining" or None

class Store(Protocol):
    # --- send connectors ---------------------------------------------------------
    async def list_connectors(self) -> list[SendConnector]: ...
    async def get_connector(self, name: str) -> SendConnector: ...
    async def create_connector(self, connector: SendConnector, secret: str | None = None) -> None: ...
    async def update_connector(
        self, name: str, change: Callable[[SendConnector], SendConnector], secret: str | None = None
    ) -> SendConnector: ...
    async def delete_connector(self, name: str) -> SendConnector: ...
    async def connector_secret(self, guid: str) -> str | None: ...
    async def config_version(self) -> int: ...

    # --- messages ------------------------------------------------------------------
    async def submit(self, messages: Sequence[NewMessage]) -> None: ...
    async def claim(
        self, owner: str, now: float, lease_until: float, limit: int,
        connectors: Sequence[str] | None, queues_excluded: Sequence[str] = (),
        share: tuple[int, int] | None = None, stale_before: float = 0.0,
    ) -> list[Claim]: ...
    async def load_body(self, message_id: int) -> bytes: ...
    async def record(self, batch: RecordBatch) -> None: ...
    async def release(self, owner: str, now: float) -> int: ...
    async def recover(self, owner_prefix: str, incarnation: str, now: float) -> list[int]: ...
    async def resubmit(self, live_connectors: Sequence[str], now: float,
                       removed: Sequence[str] | None = None) -> int: ...
    async def next_due(self, connectors: Sequence[str] | None) -> float | None: ...

    # --- queues (the administrator's view) -----------------------------------------------
    async def queue_states(self) -> list[QueueState]: ...
    async def set_queue_state(self, state: QueueState) -> None: ...
    async def messages(self, queue: str | None = None, limit: int = 1000,
                       after: int = 0) -> list[tuple[MessageInfo, list[RecipientRow]]]: ...
    async def get_message(self, message_id: int) -> tuple[MessageInfo, list[RecipientRow]]: ...
    async def queue_summary(self) -> list[QueueSummary]: ...
    async def retry_queue(self, queue: str, now: float) -> int: ...
    async def suspend_message(self, message_id: int) -> int: ...
    async def resume_message(self, message_id: int, now: float) -> int: ...
    async def remove_message(self, message_id: int, ndr: NewMessage | None = None) -> None: ...
    async def mark_crashed(self, message_ids: Sequence[int], threshold: int) -> list[int]: ...

    # --- servers ---------------------------------------------------------------------
    async def heartbeat(self, server: ServerInfo, lease_until: float) -> None: ...
    async def servers(self) -> list[ServerInfo]: ...
    async def request_server_state(self, name: str, state: str | None) -> ServerInfo: ...
    async def active_by_owner(self) -> dict[str, int]: ...

    # --- admin API tokens (hashed) -----------------------------------------------------
    async def create_token(self, name: str, token_hash: str, read_only: bool) -> AdminToken: ...
    async def tokens(self) -> list[AdminToken]: ...
    async def delete_token(self, name: str) -> None: ...
    async def token_by_hash(self, token_hash: str) -> AdminToken | None: ...

    async def close(self) -> None: ...
