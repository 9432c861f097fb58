"""Messages and recipients as the queue holds them."""

from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import dataclass, field

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

_EPOCH_MS = 1_577_836_800_000  # 2020-01-01
_lock = threading.Lock()
_counter = itertools.count(int.from_bytes(os.urandom(3), "big"))
_tag = 0  # the worker process's index, so that a server's workers never make the same id


def set_id_tag(worker: int) -> None:
    """Make this process's ids distinct from its sibling workers' (up to 16 workers)."""
    global _tag
    _tag = worker & 0xF


def _reseed() -> None:
    # A forked worker must not continue its parent's sequence.
    global _counter
    _counter = itertools.count(int.from_bytes(os.urandom(3), "big"))


os.register_at_fork(after_in_child=_reseed)


def new_message_id() -> int:
    """A 63-bit id, unique across the workers of a server and ordered by time.

    41 bits of milliseconds since 2020, 18 bits of a counter that starts at a random
    value in each process, 4 bits of the worker index.  Servers sharing a store can
    collide only within one millisecond on the same counter value; the store's
    primary key refuses such an id and the client is asked to try again (451).
    """
    with _lock:
        count = next(_counter)
    ms = int(time.time() * 1000) - _EPOCH_MS
    return (ms << 22) | ((count & 0x3FFFF) << 4) | _tag


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
    id: int = field(default_factory=lambda: new_message_id())


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


@dataclass(slots=True)
class NewMessage:
    info: MessageInfo
    body: bytes
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


@dataclass(slots=True)
class Claim:
    """A message and those of its recipients a server has leased."""

    message: MessageInfo
    recipients: list[RecipientRow]
    body: bytes | None = None


@dataclass(slots=True)
class RecipientUpdate:
    """What happened to one recipient; applied by ``Store.record`` in one transaction."""

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
