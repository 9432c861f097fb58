"""Protocol tests for mailhop.smtp.client against an aiosmtpd sink on loopback."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from mailhop.errors import ConnectionFailure
from mailhop.outcome import Outcome
from mailhop.smtp.client import ClientConnection
from mailhop.smtp.session import TlsPlan
from tests.unit.smtp_helpers import IO_TIMEOUT, TlsMaterial, free_port, make_tls_material

HELO = "mailhop.test.example"
SENDER = "sender@example.org"
BODY = b"From: sender@example.org\r\nSubject: test\r\n\r\nHello.\r\n"


@dataclass
class Delivered:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    over_tls: bool


@dataclass
class SinkHandler:
    """aiosmtpd hooks: refuse chosen recipients at RCPT, answer MAIL/DATA as configured."""

    reject: set[str] = field(default_factory=set)      # 550 5.1.1 at RCPT
    tempfail: set[str] = field(default_factory=set)    # 450 4.2.0 at RCPT
    mail_reply: str | None = None                      # refuse MAIL with this
    data_reply: str | None = None                      # answer DATA with this
    helos: list[str] = field(default_factory=list)
    mails: list[str] = field(default_factory=list)
    rcpts: list[str] = field(default_factory=list)
    messages: list[Delivered] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        with self.lock:
            self.helos.append(hostname)
        return responses

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]) -> str:
        with self.lock:
            self.mails.append(address)
        if self.mail_reply is not None:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        with self.lock:
            self.rcpts.append(address)
        if address.lower() in self.reject:
            return "550 5.1.1 User unknown"
        if address.lower() in self.tempfail:
            return "450 4.2.0 Mailbox temporarily unavailable"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply is not None:
            return self.data_reply
        content = envelope.original_content or envelope.content
        with self.lock:
            self.messages.append(Delivered(envelope.mail_from, list(envelope.rcpt_tos), content, session.ssl is not None))
        return "250 2.0.0 OK queued"


@dataclass
class Sink:
    handler: SinkHandler
    port: int


@pytest.fixture(scope="module")
def tls() -> TlsMaterial:
    return make_tls_material()


@pytest.fixture
def sink_factory() -> Iterator[Callable[..., Sink]]:
    controllers: list[Controller] = []

    def start(handler: SinkHandler | None = None, **smtp_kwargs: Any) -> Sink:
        handler = handler or SinkHandler()
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **smtp_kwargs)
        controller.start()
        controllers.append(controller)
        return Sink(handler, port)

    yield start
    for controller in controllers:
        controller.stop()


@dataclass
class Opened:
    conn: ClientConnection
    lost: asyncio.Future[None]


def _watch_connection_lost(conn: ClientConnection) -> asyncio.Future[None]:
    """A future resolved when the socket under ``conn`` is really gone (over TLS, after close_notify)."""
    return asyncio.ensure_future(conn.wait_closed())


@pytest.fixture
async def connections() -> AsyncIterator[list[Opened]]:
    opened: list[Opened] = []
    yield opened
    for item in opened:
        await item.conn.close()
        await asyncio.wait_for(item.lost, IO_TIMEOUT)


async def open_conn(
    opened: list[Opened], port: int, tls: TlsPlan | None = None, host: str = "127.0.0.1"
) -> ClientConnection:
    conn = await ClientConnection.open(
        host, "127.0.0.1", port, HELO, tls=tls or TlsPlan(), connect_timeout=10, command_timeout=10,
    )
    opened.append(Opened(conn, _watch_connection_lost(conn)))
    return conn


async def test_per_recipient_replies(sink_factory: Callable[..., Sink], connections: list[Opened]) -> None:
    sink = sink_factory(SinkHandler(reject={"gone@example.com"}, tempfail={"busy@example.com"}))
    conn = await open_conn(connections, sink.port)
    rcpts = ["ok@example.com", "gone@example.com", "busy@example.com"]
    tx = await conn.send(SENDER, rcpts, BODY)

    assert set(tx.recipients) == set(rcpts)
    ok, gone, busy = (tx.recipients[r] for r in rcpts)
    assert ok.outcome is Outcome.DELIVERED and ok.code == 250
    assert gone.outcome is Outcome.PERMANENT and (gone.code, gone.enhanced) == (550, "5.1.1")
    assert busy.outcome is Outcome.TEMPORARY and (busy.code, busy.enhanced) == (450, "4.2.0")
    assert tx.failure is None
    assert tx.data_reply is not None and tx.data_reply.ok

    assert sink.handler.rcpts == rcpts
    (msg,) = sink.handler.messages
    assert msg.mail_from == SENDER
    assert msg.rcpt_tos == ["ok@example.com"]
    assert msg.content == BODY
    assert conn.messages_sent == 1


async def test_all_recipients_refused_sends_no_data(
    sink_factory: Callable[..., Sink], connections: list[Opened]
) -> None:
    sink = sink_factory(SinkHandler(reject={"gone@example.com"}, tempfail={"busy@example.com"}))
    conn = await open_conn(connections, sink.port)
    tx = await conn.send(SENDER, ["gone@example.com", "busy@example.com"], BODY)
    assert tx.recipients["gone@example.com"].outcome is Outcome.PERMANENT
    assert tx.recipients["busy@example.com"].outcome is Outcome.TEMPORARY
    assert tx.data_reply is None
    assert sink.handler.messages == []
    assert conn.messages_sent == 0
    # The transaction was reset: the connection can carry the next message.
    assert conn.usable
    tx2 = await conn.send(SENDER, ["ok@example.com"], BODY)
    assert tx2.recipients["ok@example.com"].ok
    assert [m.rcpt_tos for m in sink.handler.messages] == [["ok@example.com"]]


async def test_data_451_is_a_temporary_failure(
    sink_factory: Callable[..., Sink], connections: list[Opened]
) -> None:
    sink = sink_factory(SinkHandler(data_reply="451 4.3.0 Try again later"))
    conn = await open_conn(connections, sink.port)
    tx = await conn.send(SENDER, ["a@example.com", "b@example.com"], BODY)
    assert tx.failure is not None
    assert tx.failure.temporary
    assert (tx.failure.code, tx.failure.enhanced) == (451, "4.3.0")
    assert all(r.code == 451 and r.temporary for r in tx.recipients.values())
    assert sink.handler.messages == []


async def test_data_554_is_a_permanent_failure(
    sink_factory: Callable[..., Sink], connections: list[Opened]
) -> None:
    sink = sink_factory(SinkHandler(data_reply="554 5.6.0 Content rejected"))
    conn = await open_conn(connections, sink.port)
    tx = await conn.send(SENDER, ["a@example.com"], BODY)
    assert tx.failure is not None and tx.failure.permanent
    assert (tx.failure.code, tx.failure.enhanced) == (554, "5.6.0")
    assert tx.recipients["a@example.com"].permanent


async def test_mail_refused(sink_factory: Callable[..., Sink], connections: list[Opened]) -> None:
    sink = sink_factory(SinkHandler(mail_reply="550 5.7.1 Sender rejected"))
    conn = await open_conn(connections, sink.port)
    tx = await conn.send(SENDER, ["a@example.com", "b@example.com"], BODY)
    assert tx.failure is not None
    assert (tx.failure.code, tx.failure.enhanced) == (550, "5.7.1")
    assert tx.failure.permanent
    assert {r: rep.code for r, rep in tx.recipients.items()} == {"a@example.com": 550, "b@example.com": 550}
    assert sink.handler.mails == [SENDER]
    assert sink.handler.rcpts == []
    assert sink.handler.messages == []
    assert conn.messages_sent == 0


async def test_mail_tempfail_is_temporary(sink_factory: Callable[..., Sink], connections: list[Opened]) -> None:
    sink = sink_factory(SinkHandler(mail_reply="451 4.7.1 Greylisted"))
    conn = await open_conn(connections, sink.port)
    tx = await conn.send(SENDER, ["a@example.com"], BODY)
    assert tx.failure is not None and tx.failure.temporary
    assert (tx.failure.code, tx.failure.enhanced) == (451, "4.7.1")
    assert sink.handler.rcpts == []


async def test_body_over_advertised_size_fails_without_sending(
    sink_factory: Callable[..., Sink], connections: list[Opened]
) -> None:
    sink = sink_factory(data_size_limit=64)
    conn = await open_conn(connections, sink.port)
    assert conn.extensions.get("size", "").strip() == "64"
    body = BODY + b"x" * 100 + b"\r\n"
    tx = await conn.send(SENDER, ["a@example.com"], body)
    assert tx.failure is not None
    assert (tx.failure.code, tx.failure.enhanced) == (550, "5.3.4")
    assert tx.recipients["a@example.com"].permanent
    assert sink.handler.mails == []
    assert sink.handler.messages == []


async def test_connect_to_closed_port_is_a_temporary_connection_failure() -> None:
    port = free_port()
    with pytest.raises(ConnectionFailure) as info:
        await ClientConnection.open(
            "127.0.0.1", "127.0.0.1", port, HELO, tls=TlsPlan(), connect_timeout=10, command_timeout=10,
        )
    reply = info.value.reply
    assert reply.temporary
    assert (reply.code, reply.enhanced) == (441, "4.4.1")
    assert info.value.stage == "connect"


async def test_tls_required_without_starttls_fails(
    sink_factory: Callable[..., Sink],
) -> None:
    sink = sink_factory()
    with pytest.raises(ConnectionFailure) as info:
        await ClientConnection.open(
            "mx.example.net", "127.0.0.1", sink.port, HELO, tls=TlsPlan(required=True),
            connect_timeout=10, command_timeout=10,
        )
    reply = info.value.reply
    assert reply.temporary
    assert reply.enhanced.startswith("4.")
    assert "STARTTLS" in reply.text
    assert sink.handler.mails == []


async def test_opportunistic_starttls_without_verification(
    sink_factory: Callable[..., Sink], connections: list[Opened], tls: TlsMaterial
) -> None:
    sink = sink_factory(tls_context=tls.server)
    conn = await open_conn(connections, sink.port)
    assert conn.tls_version is not None and conn.tls_version.startswith("TLSv")
    assert conn.tls_cipher
    # EHLO was said again over TLS, and its answer (no STARTTLS any more) is what we kept.
    assert sink.handler.helos == [HELO, HELO]
    assert not conn.supports("starttls")
    tx = await conn.send(SENDER, ["a@example.com"], BODY)
    assert tx.recipients["a@example.com"].ok
    (msg,) = sink.handler.messages
    assert msg.over_tls


async def test_starttls_with_verified_certificate(
    sink_factory: Callable[..., Sink], connections: list[Opened], tls: TlsMaterial
) -> None:
    sink = sink_factory(tls_context=tls.server)
    plan = TlsPlan(required=True, context=tls.client, server_hostname="localhost")
    conn = await open_conn(connections, sink.port, tls=plan, host="localhost")
    assert conn.tls_version is not None and conn.tls_version.startswith("TLSv")
    tx = await conn.send(SENDER, ["a@example.com"], BODY)
    assert tx.recipients["a@example.com"].ok
    assert sink.handler.messages[0].over_tls


async def test_starttls_with_untrusted_certificate_is_a_connection_failure(
    sink_factory: Callable[..., Sink], tls: TlsMaterial
) -> None:
    other = make_tls_material()  # a client trusting a different CA
    sink = sink_factory(tls_context=tls.server)
    plan = TlsPlan(required=True, context=other.client, server_hostname="localhost")
    with pytest.raises(ConnectionFailure) as info:
        await ClientConnection.open(
            "localhost", "127.0.0.1", sink.port, HELO, tls=plan, connect_timeout=10, command_timeout=10,
        )
    assert info.value.reply.temporary
    assert sink.handler.mails == []


async def test_connection_reuse_delivers_two_messages(
    sink_factory: Callable[..., Sink], connections: list[Opened]
) -> None:
    sink = sink_factory()
    conn = await open_conn(connections, sink.port)
    tx1 = await conn.send(SENDER, ["a@example.com"], BODY)
    body2 = BODY.replace(b"Hello.", b"Second.")
    tx2 = await conn.send(SENDER, ["b@example.com", "c@example.com"], body2)
    assert tx1.recipients["a@example.com"].ok
    assert tx2.recipients["b@example.com"].ok and tx2.recipients["c@example.com"].ok
    assert conn.messages_sent == 2
    assert conn.usable
    assert len(sink.handler.helos) == 1  # one session carried both
    assert [(m.rcpt_tos, m.content) for m in sink.handler.messages] == [
        (["a@example.com"], BODY),
        (["b@example.com", "c@example.com"], body2),
    ]


async def test_dot_stuffing_round_trip(sink_factory: Callable[..., Sink], connections: list[Opened]) -> None:
    sink = sink_factory()
    conn = await open_conn(connections, sink.port)
    body = b"Subject: dots\r\n\r\n.leading dot\r\n.\r\n..two\r\nend\r\n"
    tx = await conn.send(SENDER, ["a@example.com"], body)
    assert tx.recipients["a@example.com"].ok
    assert sink.handler.messages[0].content == body
