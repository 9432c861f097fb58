"""Messages and recipients as the queue holds them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

# Recipient statuses.  ready/retry wait for their next_attempt_at; active is leased
# by a server delivering it; suspended and poison wait for an administrator;
# delivered and failed are final.
READY = "ready"
ACTIVE = "active"
RETRY = "retry"
SUSPENDED = "suspended"
POISON = "poison"
DELIVERED = "delivered"
FAILED = "failed"
FINAL = (DELIVERED, FAILED)
WAITING = (READY, RETRY)

# Message kinds.
NORMAL = "normal"
NDR = "ndr"
DELAY_DSN = "delay"
REPORT = "report"  # a TLS report (RFC 8460) mailhop sends


@dataclass(slots=True)
class NewRecipient:
    address: str
    status: str
    queue: str
    delivery_type: str
    next_hop: str
    next_attempt_at: float
    connector: str | None = None
    last_error: str | None = None
    lease_owner: str | None = None
    lease_until: float | None = None
    attempts: int = 0
    dsn: str | None = None       # the RCPT's DSN parameters (model.dsn_params): NOTIFY, ORCPT
    id: int = field(kw_only=True)


@dataclass(slots=True)
class MessageInfo:
    """A message row without its body."""

    id: int
    sender: str
    received_at: float
    size: int
    origin_server: str
    expires_at: float
    delay_at: float | None = None
    message_id: str | None = None
    subject: str | None = None
    client_ip: str | None = None
    client_hostname: str | None = None
    receive_connector: str | None = None
    auth_user: str | None = None
    kind: str = NORMAL
    smtputf8: bool = False
    eight_bit: bool = False
    crash_count: int = 0
    require_tls: bool = False    # MAIL FROM ... REQUIRETLS (RFC 8689): validated TLS all the way
    tls_optional: bool = False   # "TLS-Required: No" (RFC 8689 section 5): DANE/MTA-STS not enforced
    dsn: str | None = None       # the MAIL's DSN parameters (model.dsn_params): RET, ENVID
    binary_mime: bool = False    # BODY=BINARYMIME (RFC 3030): leaves only to BINARYMIME next hops

    @property
    def tls_demand(self) -> str:
        """What the message asks of outbound TLS: ``requiretls``, ``optional`` or ``normal``."""
        return "requiretls" if self.require_tls else "optional" if self.tls_optional else "normal"


class SpooledBody(Protocol):
    """A body too large to hold in memory, waiting in a spool file for its commit.

    ``parts`` reads it in order, ``part_size`` bytes at a time (the last part may be
    shorter); the store's writer thread calls it while it commits the message.
    """

    size: int

    def parts(self, part_size: int) -> Iterator[bytes]: ...


Body = bytes | SpooledBody


def body_size(body: Body) -> int:
    return len(body) if isinstance(body, bytes) else body.size


@dataclass(slots=True)
class NewMessage:
    info: MessageInfo
    body: Body
    recipients: list[NewRecipient]


@dataclass(slots=True)
class RecipientRow:
    id: int
    message_id: int
    address: str
    status: str
    queue: str
    delivery_type: str
    next_hop: str
    next_attempt_at: float
    connector: str | None = None
    attempts: int = 0
    last_error: str | None = None
    lease_owner: str | None = None
    dsn: str | None = None       # NOTIFY and ORCPT (model.dsn_params)


@dataclass(slots=True)
class Claim:
    """A message and those of its recipients a server has leased."""

    message: MessageInfo
    recipients: list[RecipientRow]
    body: bytes | None = None  # at hand for a fresh message kept in memory; else read from the store


@dataclass(slots=True)
class RecipientUpdate:
    """What happened to one recipient; applied by ``Messages.record`` in one transaction."""

    recipient_id: int
    status: str
    next_attempt_at: float | None = None
    last_error: str | None = None
    attempted: bool = False  # counts as a delivery attempt
    # A new route, when the recipient was re-routed:
    queue: str | None = None
    connector: str | None = None
    delivery_type: str | None = None
    next_hop: str | None = None
    clear_connector: bool = False


@dataclass(slots=True)
class RecordBatch:
    outcomes: list[RecipientUpdate] = field(default_factory=list)
    new_messages: list[NewMessage] = field(default_factory=list)
    delay_notified: list[int] = field(default_factory=list)
    # The lease owner recording: an outcome applies only to a recipient still leased to it, so
    # a stalled server whose lease expired cannot overwrite what the new owner recorded.
    owner: str | None = None
    # Written again after a failure: the first write may have committed before its answer was
    # lost (a dropped connection), so new messages already stored are not inserted twice.
    again: bool = False
