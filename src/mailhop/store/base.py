"""What mailhop keeps, behind small repositories: one protocol per aggregate.

A ``Store`` is a set of repositories sharing one transaction engine: ``connectors``
(send connectors and their secrets), ``messages`` (the queue as delivery sees it:
submit, claim, record, leases), ``queues`` (the administrator's view and queue
states), ``servers`` (cluster membership), ``tokens`` (admin API tokens), ``dkim``
(DKIM signing configs and their private keys), ``mta_sts`` (the MTA-STS policy
cache, ``delivery.mta_sts.StsCache``) and ``tls_reports`` (TLS-RPT session counts and the
reports taken, one per domain and day across a cluster).  Each
consumer is handed only the repositories it needs.

Contract (tests/contract runs the same suite against the in-memory store of
``mailhop.testing``, SQLite and PostgreSQL):
- ``messages.submit`` returns only after the messages, their bodies and recipients
  are durable (committed and on disk); it is atomic: all the messages or none.
- ``messages.record`` applies outcomes, new messages (NDRs) and flags in one
  transaction, and deletes every message left with no recipient that is not final.
- ``messages.claim`` leases due recipients (status ready/retry, next attempt due,
  queue not suspended, lease free or expired) to one owner, marks them active, and
  never hands the same recipient to two owners whose leases are both live.
- Connector changes bump ``connectors.version()`` so every server sees them; a
  stored connector that no longer validates is returned as quarantined by
  ``connectors.load()`` and never raises out of it.
- DKIM private keys are kept apart from the configs (``dkim.private_keys``), as the
  caller sealed them; changes bump ``dkim.version()``.
- Errors of the database are raised as ``StoreError`` (a duplicate name or id as
  ``ConflictError``, an unknown object as ``NotFoundError``); a failed call changed
  nothing.
- Times are the caller's (``now`` arguments) or the store's injected clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mailhop.delivery.mta_sts import StsCache
from mailhop.delivery.tls_results import CountRow, DayCounts, SentReport
from mailhop.model.connector import SendConnector
from mailhop.model.dkim import DkimConfig
from mailhop.model.message import Claim, MessageInfo, NewMessage, RecipientRow, RecordBatch

# Bodies are kept, read and written in parts of this size: a message's size never
# decides how much memory one operation needs.
PART_SIZE = 1024 * 1024


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
    scope: str  # FULL, READ or SUBMIT
    created_at: float

    @property
    def read_only(self) -> bool:
        return self.scope == READ


FULL, READ, SUBMIT = "full", "read", "submit"
SCOPES = (FULL, READ, SUBMIT)


@dataclass(frozen=True, slots=True)
class ServerInfo:
    name: str
    incarnation: str
    fqdn: str
    state: str
    started_at: float
    heartbeat_at: float
    requested_state: str | None = None  # set by an administrator: "Draining" or None


@dataclass(frozen=True, slots=True)
class QuarantinedConnector:
    """A stored connector that fails today's validation: skipped by routing, shown with its reason."""

    name: str
    guid: str
    reason: str


@dataclass(frozen=True, slots=True)
class ConnectorSet:
    valid: tuple[SendConnector, ...] = ()
    quarantined: tuple[QuarantinedConnector, ...] = field(default=())


class Connectors(Protocol):
    async def load(self) -> ConnectorSet:
        """Every stored connector, valid ones and quarantined ones, by name."""
        ...

    async def list(self) -> list[SendConnector]:
        """The valid connectors, by name."""
        ...

    async def get(self, name: str) -> SendConnector:
        """By name (any case) or guid; NotFoundError, or ValidationError for a quarantined one."""
        ...

    async def create(self, connector: SendConnector, secret: str | None = None) -> None: ...

    async def update(self, name: str, change: Callable[[SendConnector], SendConnector],
                     secret: str | None = None) -> SendConnector:
        """Apply ``change`` to the stored connector in one transaction (a quarantined one is
        handed over unvalidated, so that a change can repair it)."""
        ...

    async def delete(self, name: str) -> str:
        """Delete by name or guid (quarantined ones too); returns the deleted connector's name."""
        ...

    async def secret(self, guid: str) -> str | None: ...
    async def version(self) -> int: ...


class Messages(Protocol):
    async def submit(self, messages: Sequence[NewMessage]) -> None: ...

    async def claim(
        self, owner: str, now: float, lease_until: float, limit: int,
        connectors: Sequence[str] | None, queues_excluded: Sequence[str] = (),
        share: tuple[int, int] | None = None, stale_before: float = 0.0,
    ) -> list[Claim]: ...

    async def body(self, message_id: int) -> bytes:
        """The whole body (NotFoundError when the message is gone)."""
        ...

    def body_parts(self, message_id: int) -> AsyncIterator[bytes]:
        """The body in order, one part of at most ``PART_SIZE`` bytes at a time."""
        ...

    async def record(self, batch: RecordBatch) -> None: ...

    async def release(self, owner: str, now: float) -> int:
        """Free every lease of ``owner`` (a clean stop); returns how many."""
        ...

    async def recover(self, owner_prefix: str, incarnation: str, now: float) -> list[int]:
        """Free leases of dead earlier incarnations (owners ``<owner_prefix>/...`` other than
        ``incarnation``) and every expired lease; the ids of the messages concerned."""
        ...

    async def resubmit(self, live_connectors: Sequence[str], now: float,
                       removed: Sequence[str] | None = None) -> int:
        """Send waiting recipients back to routing: Unreachable ones, and those of connectors
        deleted or disabled (``removed``, or at start every one not in ``live_connectors``)."""
        ...

    async def next_due(self, connectors: Sequence[str] | None) -> float | None: ...

    async def mark_crashed(self, message_ids: Sequence[int], threshold: int) -> list[int]:
        """Count a crash against each message; those reaching ``threshold`` go to Poison (returned)."""
        ...

    async def mark_suspect(self, message_ids: Sequence[int]) -> None:
        """Make each message a poison suspect (crash count at least 1) without counting a crash."""
        ...


class Queues(Protocol):
    async def states(self) -> list[QueueState]: ...
    async def set_state(self, state: QueueState) -> None: ...
    async def summary(self) -> list[QueueSummary]: ...
    async def messages(self, queue: str | None = None, limit: int = 1000,
                       after: int = 0) -> list[tuple[MessageInfo, list[RecipientRow]]]: ...
    async def get_message(self, message_id: int) -> tuple[MessageInfo, list[RecipientRow]]: ...

    async def retry(self, queue: str, now: float) -> int:
        """Make the queue's waiting recipients due now and clear its retry timer."""
        ...

    async def suspend_message(self, message_id: int) -> int: ...

    async def resume_message(self, message_id: int, now: float) -> int:
        """Resume a suspended message; a poison message goes back to routing (Resume-Message)."""
        ...

    async def remove_message(self, message_id: int, ndr: NewMessage | None = None) -> None: ...


class Servers(Protocol):
    async def heartbeat(self, server: ServerInfo, lease_until: float, held: Collection[int] | None = None) -> None:
        """Record the server's state and push its active leases to ``lease_until``: only those of
        the recipient ids in ``held`` (what the worker has in memory) when given, so a lease it
        holds without a job (a commit whose answer was lost) expires and is recovered."""
        ...

    async def list(self) -> list[ServerInfo]: ...
    async def request_state(self, name: str, state: str | None) -> ServerInfo: ...
    async def active_by_owner(self) -> dict[str, int]: ...


class Tokens(Protocol):
    async def create(self, name: str, token_hash: str, scope: str) -> AdminToken: ...
    async def list(self) -> list[AdminToken]: ...
    async def delete(self, name: str) -> None: ...
    async def by_hash(self, token_hash: str) -> AdminToken | None: ...


class DkimKeys(Protocol):
    async def list(self) -> list[DkimConfig]:
        """Every config, by domain."""
        ...

    async def get(self, domain: str) -> DkimConfig:
        """By domain (any case); NotFoundError."""
        ...

    async def create(self, config: DkimConfig, private_keys: Mapping[str, str]) -> None:
        """A new config with its private keys by selector; ConflictError for a domain taken."""
        ...

    async def update(self, domain: str, change: Callable[[DkimConfig], DkimConfig],
                     private_keys: Mapping[str, str] | None = None) -> DkimConfig:
        """Apply ``change`` in one transaction; ``private_keys`` replaces the keys of the
        selectors it names, and keys of selectors the changed config no longer has are dropped."""
        ...

    async def delete(self, domain: str) -> str: ...

    async def private_keys(self, domain: str) -> dict[str, str]:
        """The sealed private keys by selector (NotFoundError for an unknown domain)."""
        ...

    async def version(self) -> int: ...


class TlsReports(Protocol):
    async def add(self, rows: Sequence[CountRow]) -> None:
        """Add these counts to what is stored (a cluster's servers add to the same rows)."""
        ...

    async def counts(self, day: str | None = None, domain: str | None = None) -> list[DayCounts]: ...

    async def claim(self, report: SentReport) -> bool:
        """Take the report of ``report.domain`` for ``report.day``: False when it was taken already
        (a ConflictError when two servers race for it)."""
        ...

    async def update_sent(self, report: SentReport) -> None: ...
    async def sent(self) -> list[SentReport]: ...

    async def prune(self, before_day: str) -> None:
        """Forget the counts and reports of days before ``before_day`` (YYYY-MM-DD)."""
        ...


class Store(Protocol):
    @property
    def connectors(self) -> Connectors: ...
    @property
    def messages(self) -> Messages: ...
    @property
    def queues(self) -> Queues: ...
    @property
    def servers(self) -> Servers: ...
    @property
    def tokens(self) -> Tokens: ...
    @property
    def dkim(self) -> DkimKeys: ...
    @property
    def mta_sts(self) -> StsCache: ...
    @property
    def tls_reports(self) -> TlsReports: ...

    async def close(self) -> None: ...
