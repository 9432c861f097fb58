"""Typed message tracking events, and the fan-out that hands each one to its consumers.

One constructor per event mailhop records (Exchange's event IDs): ``received``,
``sent``, ``deferred``, ``failed``, ``dsn``, ``poisoned``; each makes an ``Event``, a
value the deciding code can return (the outcome recorder is a pure function).
``Tracker.emit`` stamps it with the time and the process and hands the
``TrackingEvent`` to every sink in order: the tracking log first; webhooks and
metrics add their sinks beside it.  A sink that raises is logged and skipped; the
others still get the event and mail flow never stops for a record.

``source_context`` names the process that made the event (Exchange's
``source-context`` field): the server's lease owner ``NAME/WORKER/INCARNATION``, or
``NAME/cli/<pid>`` for the command line acting on a store no server runs on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mailhop.clock import Clock
from mailhop.model.message import MessageInfo
from mailhop.outcome import Reply

log = logging.getLogger(__name__)

RECEIVE, SEND, DEFER, FAIL, DSN, POISONMESSAGE = "RECEIVE", "SEND", "DEFER", "FAIL", "DSN", "POISONMESSAGE"


@dataclass(frozen=True, slots=True)
class TrackingEvent:
    event_id: str
    source: str
    timestamp: float
    info: MessageInfo | None = None
    recipients: tuple[str, ...] = ()
    recipient_status: tuple[str, ...] | None = None
    connector_id: str | None = None
    server_ip: str | None = None
    source_context: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


Sink = Callable[[TrackingEvent], None]
Outcomes = Iterable[tuple[str, Reply]]  # (recipient address, what it got)


@dataclass(frozen=True, slots=True)
class Event:
    """An event as the code that decides it makes it; the ``Tracker`` stamps time and context."""

    event_id: str
    source: str
    info: MessageInfo | None
    recipients: tuple[str, ...]
    recipient_status: tuple[str, ...] | None = None
    connector_id: str | None = None
    server_ip: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def _pairs(items: Outcomes) -> tuple[tuple[str, ...], tuple[str, ...]]:
    pairs = list(items)
    return tuple(a for a, _ in pairs), tuple(str(r) for _, r in pairs)


def received(info: MessageInfo, recipients: Iterable[str], connector: str | None, source: str = "SMTP") -> Event:
    return Event(RECEIVE, source, info, tuple(recipients), connector_id=connector)


def sent(info: MessageInfo, items: Outcomes, connector: str, server_ip: str | None,
         extra: Mapping[str, Any]) -> Event:
    return Event(SEND, "SMTP", info, *_pairs(items), connector_id=connector, server_ip=server_ip, extra=extra)


def deferred(info: MessageInfo, items: Outcomes, connector: str, server_ip: str | None,
             extra: Mapping[str, Any]) -> Event:
    return Event(DEFER, "SMTP", info, *_pairs(items), connector_id=connector, server_ip=server_ip, extra=extra)


def failed(info: MessageInfo, items: Outcomes, source: str, connector: str | None = None,
           server_ip: str | None = None, extra: Mapping[str, Any] | None = None) -> Event:
    """FAIL from ``source``: SMTP (a 5xx), QUEUE (expiry), ROUTING, ADMIN (removed)."""
    return Event(FAIL, source, info, *_pairs(items), connector_id=connector, server_ip=server_ip,
                 extra=extra or {})


def dsn(info: MessageInfo, items: Outcomes, dsn_id: int, delayed: bool = False) -> Event:
    return Event(DSN, "DSN", info, *_pairs(items),
                 extra={"RelatedInternalMessageId": dsn_id, "DsnType": "delay" if delayed else "failure"})


def poisoned(info: MessageInfo, recipients: Iterable[str], reply: Reply) -> Event:
    addresses = tuple(recipients)
    return Event(POISONMESSAGE, "POISONMESSAGE", info, addresses, (str(reply),) * len(addresses))


class Tracker:
    def __init__(self, clock: Clock, source_context: str, sinks: Iterable[Sink] = ()) -> None:
        self.clock = clock
        self.source_context = source_context
        self.sinks: list[Sink] = list(sinks)

    def emit(self, event: Event) -> None:
        stamped = TrackingEvent(event.event_id, event.source, self.clock.now(), event.info, event.recipients,
                                event.recipient_status, event.connector_id, event.server_ip, self.source_context,
                                event.extra)
        for sink in self.sinks:
            try:
                sink(stamped)
            except Exception:
                log.exception("a tracking sink failed on %s of message %s", event.event_id,
                              event.info.id if event.info else None)
