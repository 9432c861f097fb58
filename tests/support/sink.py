"""A capturing SMTP receiver (aiosmtpd) that plays the next hop or the final destination.

Behaviour knobs, each a set of recipient addresses (or None):
``reject`` 550 at RCPT, ``tempfail`` 450 at RCPT; ``data_reply`` answers DATA with
that reply instead of 250; ``stall`` makes DATA hang until released (for crash tests);
``delay`` seconds before each DATA answer (deliveries in flight for crash tests).
"""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import threading
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as AioSMTP

from tests.support.net import free_port


@dataclass
class Captured:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    peer: str
    helo: str | None

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[return-value]

    def received(self) -> list[str]:
        return [str(v) for v in self.message.get_all("Received", [])]


@dataclass
class SinkHandler:
    messages: list[Captured] = field(default_factory=list)
    reject: set[str] = field(default_factory=set)
    tempfail: set[str] = field(default_factory=set)
    delay: float = 0.0
    data_reply: str | None = None
    stall: threading.Event | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    helos: list[str] = field(default_factory=list)

    async def handle_EHLO(self, server: AioSMTP, session: Any, envelope: Any, hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        self.helos.append(hostname)
        return responses

    async def handle_RCPT(self, server: AioSMTP, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        if address.lower() in self.reject:
            return "550 5.1.1 User unknown"
        if address.lower() in self.tempfail:
            return "450 4.2.0 Mailbox temporarily unavailable"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: AioSMTP, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.stall is not None:  # a threading.Event set from the test's thread
            await asyncio.to_thread(self.stall.wait)
        if self.data_reply:
            return self.data_reply
        sender = "" if envelope.mail_from in ("<>", None) else envelope.mail_from
        with self.lock:
            self.messages.append(Captured(sender, list(envelope.rcpt_tos), envelope.original_content or envelope.content,
                                          session.peer[0], session.host_name))
        return "250 2.0.0 OK captured"


class Sink:
    def __init__(self, host: str = "127.0.0.1", port: int | None = None, **knobs: Any) -> None:
        self.handler = SinkHandler(**knobs)
        self.host = host
        self.port = port or free_port(host)
        self.controller = Controller(self.handler, hostname=host, port=self.port,
                                     data_size_limit=100 * 1024 * 1024, decode_data=False,
                                     enable_SMTPUTF8=True)

    @property
    def messages(self) -> list[Captured]:
        with self.handler.lock:
            return list(self.handler.messages)

    def for_recipient(self, address: str) -> list[Captured]:
        return [m for m in self.messages if address in m.rcpt_tos]

    def start(self) -> Sink:
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.handler.stall is not None:
            self.handler.stall.set()
        self.controller.stop()

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
