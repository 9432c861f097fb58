"""The NextHopSession contract, run against FakeNextHop and against ClientConnection on aiosmtpd.

Each case describes its peer once, as a ``Peer``.  The "real" arm gives it to an aiosmtpd
server on 127.0.0.1 (a fresh one per peer) and opens ``ClientConnection.open``, with plain
``TlsPlan(starttls=False)`` unless the case is about TLS; the "fake" arm gives it to a ``FakeEndpoint`` and opens through
``FakeNextHop.open``.  The assertions are the same for both: the ``Transaction`` (replies
compared whole where the peer or the client words them), what the peer received (MAIL
senders, RCPT addresses, delivered messages with their MAIL parameters and bodies), and
the session's state (``usable``, ``messages_sent``).  Every case runs with a peer that
advertises PIPELINING (aiosmtpd told to, in EHLO) and with one that does not, so both
of the real client's paths are held to the same outcomes; nothing is timed.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import functools
import ssl
import threading
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from mailhop.errors import ConnectionFailure, StoreError
from mailhop.outcome import Outcome, Reply
from mailhop.smtp.client import ClientConnection
from mailhop.smtp.outgoing import Body
from mailhop.smtp.session import AuthPlan, NextHopSession, TlsPlan, Transaction
from mailhop.testing.nexthop import FakeEndpoint, FakeNextHop, FakeSession
from tests.support.net import free_port

IP = "127.0.0.1"
HELO = "mailhop.test.example"
SENDER = "sender@example.org"
BODY = b"From: sender@example.org\r\nSubject: test\r\n\r\nHello.\r\n"
PLAIN = TlsPlan(starttls=False)

OVER_SIZE = Reply(550, "5.3.4", "SMTPSEND.OverAdvertisedSize; message size exceeds fixed maximum size")
NO_SMTPUTF8 = Reply(550, "5.6.7", "SMTPSEND.Utf8; the remote server does not support SMTPUTF8")
ABRUPT = Reply(451, "4.4.0", "SMTPSEND.SuspiciousRemoteServerError; remote server disconnected abruptly")

Disconnect = Literal["mail", "rcpt", "data"]


# --- the peers -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Peer:
    """What the next hop does; None and empty mean accept."""

    rcpt: Mapping[str, str] = field(default_factory=dict)  # address -> RCPT reply
    mail: str | None = None                                 # MAIL reply
    data_start: str | None = None                           # refuse the DATA command with this
    data: str | None = None                                 # reply at the end of DATA
    disconnect: Disconnect | None = None                    # close the connection instead of answering
    size: int | None = None                                 # advertised SIZE limit (None: no tight one)
    smtputf8: bool = True
    credentials: Mapping[str, str] | None = None            # AUTH PLAIN/LOGIN accepted for these (None: no AUTH)
    starttls: bool = False                                  # offer STARTTLS


@dataclass
class Got:
    """A message the peer accepted, as it received it."""

    sender: str
    recipients: list[str]
    body: bytes
    options: list[str]


class NextHop(abc.ABC):
    """One arm of the suite: peers to start, a way to open sessions to them, what they saw."""

    @abc.abstractmethod
    def serve(self, peer: Peer) -> int:
        """Start a peer; its port on 127.0.0.1."""

    @abc.abstractmethod
    def unused_port(self) -> int:
        """A port where nothing listens."""

    @abc.abstractmethod
    async def _open(self, host: str, port: int, tls: TlsPlan, auth: AuthPlan | None) -> NextHopSession: ...

    @abc.abstractmethod
    def delivered(self, port: int) -> list[Got]: ...

    @abc.abstractmethod
    def mails(self, port: int) -> list[str]: ...

    @abc.abstractmethod
    def rcpts(self, port: int) -> list[str]: ...

    @abc.abstractmethod
    def connections(self, port: int) -> int: ...

    @abc.abstractmethod
    def change(self, port: int, peer: Peer) -> None:
        """From now on the peer at ``port`` answers as ``peer`` says (what it saw is kept; what
        its EHLO advertises stays as it was served)."""

    @abc.abstractmethod
    async def peer_closes(self, port: int) -> None:
        """The peer closes every connection it has (an idle timeout)."""

    def __init__(self, pipelining: bool) -> None:
        self.pipelining = pipelining
        self.opened: list[NextHopSession] = []

    async def open(self, port: int, *, host: str = IP, tls: TlsPlan = PLAIN,
                   auth: AuthPlan | None = None) -> NextHopSession:
        session = await self._open(host, port, tls, auth)
        self.opened.append(session)
        return session

    async def aclose(self) -> None:
        for session in self.opened:
            await session.close()


class Fake(NextHop):
    def __init__(self, pipelining: bool) -> None:
        super().__init__(pipelining)
        self.hop = FakeNextHop()
        self.next_port = 10025

    def _port(self) -> int:
        self.next_port += 1
        return self.next_port

    def serve(self, peer: Peer) -> int:
        port = self._port()
        self.change(port, peer)
        return port

    def change(self, port: int, peer: Peer) -> None:
        default = FakeEndpoint(IP, port)
        ep = self.hop.endpoint(IP, port)
        ep.rcpt = dict(peer.rcpt)
        ep.mail = default.mail if peer.mail is None else peer.mail
        ep.data_start = default.data_start if peer.data_start is None else peer.data_start
        ep.data = default.data if peer.data is None else peer.data
        ep.disconnect = peer.disconnect
        ep.size = default.size if peer.size is None else peer.size
        ep.smtputf8 = peer.smtputf8
        ep.credentials = None if peer.credentials is None else dict(peer.credentials)
        ep.starttls = peer.starttls
        ep.pipelining = self.pipelining

    def unused_port(self) -> int:
        return self._port()

    async def _open(self, host: str, port: int, tls: TlsPlan, auth: AuthPlan | None) -> NextHopSession:
        return await self.hop.open(host, IP, port, HELO, tls=tls, connect_timeout=10, command_timeout=10, auth=auth)

    def delivered(self, port: int) -> list[Got]:
        return [Got(d.sender, d.recipients, d.body, d.options) for d in self.hop.endpoint(IP, port).delivered]

    def mails(self, port: int) -> list[str]:
        return list(self.hop.endpoint(IP, port).mails)

    def rcpts(self, port: int) -> list[str]:
        return list(self.hop.endpoint(IP, port).rcpts)

    def connections(self, port: int) -> int:
        return self.hop.endpoint(IP, port).connections

    async def peer_closes(self, port: int) -> None:
        for session in self.hop.sessions:
            if session.port == port:
                session.drop()


@dataclass
class ScriptedHandler:
    """aiosmtpd hooks playing a ``Peer``; what it saw is read by the test's thread under ``lock``."""

    peer: Peer
    pipelining: bool
    servers: list[Any] = field(default_factory=list)  # one aiosmtpd SMTP protocol per connection
    mails: list[str] = field(default_factory=list)
    rcpts: list[str] = field(default_factory=list)
    delivered: list[Got] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def _drop(server: Any) -> str:
        server.transport.close()
        return "421 4.4.0 never sent"

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")  # before the last line, "250 HELP"
        with self.lock:
            if not any(s is server for s in self.servers):
                self.servers.append(server)
        return responses

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          mail_options: list[str]) -> str:
        with self.lock:
            self.mails.append(address)
        if self.peer.disconnect == "mail":
            return self._drop(server)
        if self.peer.mail is not None:
            return self.peer.mail
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        with self.lock:
            self.rcpts.append(address)
        if self.peer.disconnect == "rcpt":
            return self._drop(server)
        reply = {k.lower(): v for k, v in self.peer.rcpt.items()}.get(address.lower(), "250 2.1.5 Recipient OK")
        if reply.startswith("2"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.peer.disconnect == "data":
            return self._drop(server)
        reply = self.peer.data or "250 2.0.0 OK queued"
        if reply.startswith("2"):
            with self.lock:
                self.delivered.append(Got(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content,
                                          list(envelope.mail_options)))
        return reply


@functools.cache
def server_tls_context() -> ssl.SSLContext:
    """A certificate for 127.0.0.1 from a throwaway CA (the client in these cases verifies nothing)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("localhost", IP).configure_cert(context)
    return context


class ScriptedSMTP(SMTP):
    """aiosmtpd's SMTP with the DATA command refusable (its hooks only see DATA's end)."""

    async def smtp_DATA(self, arg: str) -> None:
        handler: ScriptedHandler = self.event_handler
        if handler.peer.data_start is not None and self.envelope is not None and self.envelope.rcpt_tos:
            await self.push(handler.peer.data_start)  # the transaction stays open until RSET
            return
        await super().smtp_DATA(arg)


class ScriptedController(Controller):
    def factory(self) -> SMTP:
        return ScriptedSMTP(self.handler, **self.SMTP_kwargs)


class Real(NextHop):
    def __init__(self, pipelining: bool) -> None:
        super().__init__(pipelining)
        self.controllers: dict[int, Controller] = {}
        self.handlers: dict[int, ScriptedHandler] = {}

    def serve(self, peer: Peer) -> int:
        port = free_port()
        handler = ScriptedHandler(peer, self.pipelining)
        kwargs: dict[str, Any] = {"enable_SMTPUTF8": peer.smtputf8}
        if peer.size is not None:
            kwargs["data_size_limit"] = peer.size
        if peer.credentials is not None:
            credentials = dict(peer.credentials)

            def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
                ok = (isinstance(data, LoginPassword)
                      and credentials.get(data.login.decode()) == data.password.decode())
                return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535

            kwargs.update(authenticator=authenticator, auth_require_tls=False)
        if peer.starttls:
            kwargs["tls_context"] = server_tls_context()
        controller = ScriptedController(handler, hostname=IP, port=port, **kwargs)
        controller.start()
        self.controllers[port] = controller
        self.handlers[port] = handler
        return port

    def unused_port(self) -> int:
        return free_port()

    async def _open(self, host: str, port: int, tls: TlsPlan, auth: AuthPlan | None) -> NextHopSession:
        return await ClientConnection.open(host, IP, port, HELO, tls=tls, connect_timeout=10, command_timeout=10,
                                           auth=auth)

    def _seen(self, port: int) -> ScriptedHandler:
        return self.handlers[port]

    def delivered(self, port: int) -> list[Got]:
        with self._seen(port).lock:
            return list(self._seen(port).delivered)

    def mails(self, port: int) -> list[str]:
        with self._seen(port).lock:
            return list(self._seen(port).mails)

    def rcpts(self, port: int) -> list[str]:
        with self._seen(port).lock:
            return list(self._seen(port).rcpts)

    def connections(self, port: int) -> int:
        with self._seen(port).lock:
            return len(self._seen(port).servers)

    def change(self, port: int, peer: Peer) -> None:
        with self._seen(port).lock:
            self._seen(port).peer = peer

    async def peer_closes(self, port: int) -> None:
        handler = self._seen(port)
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def close_all() -> None:  # in the server's loop
            with handler.lock:
                servers = list(handler.servers)
            for server in servers:
                if server.transport is not None:
                    server.transport.close()
            done.set_result(None)

        self.controllers[port].loop.call_soon_threadsafe(close_all)
        await asyncio.wrap_future(done)

    async def aclose(self) -> None:
        try:
            await super().aclose()
            for session in self.opened:
                assert isinstance(session, ClientConnection)
                await session.wait_closed()
        finally:
            for controller in self.controllers.values():
                controller.stop()


@pytest.fixture(params=[True, False], ids=["pipelined", "sequential"])
def pipelining(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture(params=["fake", "real"])
async def nexthop(request: pytest.FixtureRequest, pipelining: bool) -> AsyncIterator[NextHop]:
    arm: NextHop = Fake(pipelining) if request.param == "fake" else Real(pipelining)
    try:
        yield arm
    finally:
        await arm.aclose()


@dataclass
class Pieces:
    """A BodyStream: ``size`` and ``chunks()``, each piece after a turn of the event loop."""

    pieces: list[bytes]
    size: int = -1
    fail_at: int | None = None  # raise StoreError instead of yielding this piece
    read: int = 0

    def __post_init__(self) -> None:
        if self.size < 0:
            self.size = sum(len(p) for p in self.pieces)

    async def chunks(self) -> AsyncIterator[bytes]:
        for index, piece in enumerate(self.pieces):
            await asyncio.sleep(0)
            if index == self.fail_at:
                raise StoreError("the message file is gone")
            self.read += 1
            yield piece


def outcomes(tx: Transaction) -> dict[str, Outcome]:
    return {r: reply.outcome for r, reply in tx.recipients.items()}


def size_option(body: Body) -> str:
    return f"SIZE={len(body) if isinstance(body, bytes) else body.size}"


# --- accepted --------------------------------------------------------------------------------------

BODIES = {
    "plain": (BODY, BODY),
    "dots": (b"Subject: dots\r\n\r\n.leading dot\r\n.\r\n..two\r\nend\r\n",) * 2,
    "starts-with-dot": (b".first line\r\n.\r\n", b".first line\r\n.\r\n"),
    "no-final-crlf": (b"Subject: x\r\n\r\nlast\r\n.", b"Subject: x\r\n\r\nlast\r\n.\r\n"),
    "empty": (b"", b""),
}


@pytest.mark.parametrize(("body", "expected"), list(BODIES.values()), ids=list(BODIES))
async def test_all_recipients_accepted_body_arrives_exactly(nexthop: NextHop, body: bytes, expected: bytes) -> None:
    port = nexthop.serve(Peer())
    session = await nexthop.open(port)
    rcpts = ["a@example.com", "b@example.com"]
    tx = await session.send(SENDER, rcpts, body)

    assert tx.failure is None
    assert tx.data_reply is not None and tx.data_reply.code == 250
    assert tx.recipients == dict.fromkeys(rcpts, tx.data_reply)
    assert nexthop.delivered(port) == [Got(SENDER, rcpts, expected, [size_option(body)])]
    assert session.messages_sent == 1
    assert session.usable
    assert (session.host, session.ip, session.port) == (IP, IP, port)
    assert session.tls_version is None and session.tls_cipher is None
    assert isinstance(session, ClientConnection | FakeSession)
    assert session.supports("pipelining") is nexthop.pipelining


async def test_mail_parameters_for_8bit_and_smtputf8(nexthop: NextHop) -> None:
    port = nexthop.serve(Peer())
    session = await nexthop.open(port)
    tx = await session.send(SENDER, ["a@example.com"], BODY, eight_bit=True)
    assert tx.failure is None
    utf8 = await session.send(SENDER, ["jörg@example.com"], BODY)
    assert utf8.failure is None
    assert [(g.recipients, g.options) for g in nexthop.delivered(port)] == [
        (["a@example.com"], [size_option(BODY), "BODY=8BITMIME"]),
        (["jörg@example.com"], [size_option(BODY), "SMTPUTF8"]),
    ]


# --- per-recipient and whole-transaction refusals --------------------------------------------------

async def test_mixed_recipient_outcomes(nexthop: NextHop) -> None:
    port = nexthop.serve(Peer(rcpt={"gone@example.com": "550 5.1.1 User unknown",
                                    "Busy@Example.com": "450 4.2.0 Mailbox busy"}))
    session = await nexthop.open(port)
    rcpts = ["ok@example.com", "gone@example.com", "busy@example.com"]
    tx = await session.send(SENDER, rcpts, BODY)

    assert tx.failure is None
    assert tx.recipients["gone@example.com"] == Reply(550, "5.1.1", "User unknown")
    assert tx.recipients["busy@example.com"] == Reply(450, "4.2.0", "Mailbox busy")
    assert tx.recipients["ok@example.com"] == tx.data_reply
    assert outcomes(tx) == {"ok@example.com": Outcome.DELIVERED, "gone@example.com": Outcome.PERMANENT,
                            "busy@example.com": Outcome.TEMPORARY}
    assert nexthop.rcpts(port) == rcpts
    assert nexthop.delivered(port) == [Got(SENDER, ["ok@example.com"], BODY, [size_option(BODY)])]
    assert session.messages_sent == 1


async def test_no_recipient_accepted_sends_no_data(nexthop: NextHop) -> None:
    port = nexthop.serve(Peer(rcpt={"gone@example.com": "550 5.1.1 User unknown",
                                    "busy@example.com": "452 4.2.2 Over quota"}))
    session = await nexthop.open(port)
    tx = await session.send(SENDER, ["gone@example.com", "busy@example.com"], BODY)

    assert tx.failure is None and tx.data_reply is None
    assert tx.recipients == {"gone@example.com": Reply(550, "5.1.1", "User unknown"),
                             "busy@example.com": Reply(452, "4.2.2", "Over quota")}
    assert nexthop.delivered(port) == []
    assert session.messages_sent == 0
    assert session.usable  # reset: the session carries the next message
    assert (await session.send(SENDER, ["ok@example.com"], BODY)).failure is None
    assert [g.recipients for g in nexthop.delivered(port)] == [["ok@example.com"]]


async def test_mail_refused_451_fails_the_transaction_temporarily(nexthop: NextHop) -> None:
    port = nexthop.serve(Peer(mail="451 4.7.1 Greylisted, try again later"))
    session = await nexthop.open(port)
    rcpts = ["a@example.com", "b@example.com"]
    tx = await session.send(SENDER, rcpts, BODY)

    refused = Reply(451, "4.7.1", "Greylisted, try again later")
    assert tx.failure == refused
    assert tx.recipients == dict.fromkeys(rcpts, refused)
    assert set(outcomes(tx).values()) == {Outcome.TEMPORARY}
    assert tx.data_reply is None
    assert nexthop.mails(port) == [SENDER]
    assert nexthop.rcpts(port) == []
    assert nexthop.delivered(port) == []
    assert session.messages_sent == 0
    assert session.usable


@pytest.mark.parametrize(("text", "reply", "outcome"), [
    ("554 5.6.0 Content rejected", Reply(554, "5.6.0", "Content rejected"), Outcome.PERMANENT),
    ("451 4.3.0 Try again later", Reply(451, "4.3.0", "Try again later"), Outcome.TEMPORARY),
], ids=["554", "451"])
async def test_data_end_refusal(nexthop: NextHop, text: str, reply: Reply, outcome: Outcome) -> None:
    port = nexthop.serve(Peer(data=text, rcpt={"gone@example.com": "550 5.1.1 User unknown"}))
    session = await nexthop.open(port)
    tx = await session.send(SENDER, ["a@example.com", "b@example.com", "gone@example.com"], BODY)

    assert tx.failure == reply
    assert tx.data_reply == reply
    assert tx.recipients == {"a@example.com": reply, "b@example.com": reply,
                             "gone@example.com": Reply(550, "5.1.1", "User unknown")}
    assert outcomes(tx)["a@example.com"] is outcome
    assert nexthop.delivered(port) == []
    assert session.messages_sent == 1  # DATA was answered
    assert session.usable


# Found by this suite: the pipelined path returned on a refused DATA command without RSET, so
# the peer's transaction stayed open and the next MAIL on the session got 503 (nested MAIL).
@pytest.mark.parametrize(("nexthop", "pipelining"), [
    ("fake", True), ("fake", False), ("real", True), ("real", False),
], ids=["fake-pipelined", "fake-sequential", "real-pipelined", "real-sequential"], indirect=True)
async def test_data_command_refused_then_the_session_carries_the_next_message(nexthop: NextHop) -> None:
    port = nexthop.serve(Peer(data_start="554 5.7.1 Data command rejected",
                              rcpt={"gone@example.com": "550 5.1.1 User unknown"}))
    session = await nexthop.open(port)
    tx = await session.send(SENDER, ["a@example.com", "gone@example.com"], BODY)

    refused = Reply(554, "5.7.1", "Data command rejected")
    assert tx.failure == refused
    assert tx.recipients == {"a@example.com": refused, "gone@example.com": Reply(550, "5.1.1", "User unknown")}
    assert tx.data_reply is None
    assert session.messages_sent == 0
    assert session.usable  # so delivery keeps it for the next message (the failure is permanent)

    nexthop.change(port, Peer())
    nxt = await session.send(SENDER, ["b@example.com"], BODY)
    assert nxt.failure is None, nxt.failure
    assert nexthop.delivered(port) == [Got(SENDER, ["b@example.com"], BODY, [size_option(BODY)])]
    assert session.messages_sent == 1


@pytest.mark.parametrize("stream", [False, True], ids=["bytes", "stream"])
async def test_message_over_advertised_size_is_not_sent(nexthop: NextHop, stream: bool) -> None:
    port = nexthop.serve(Peer(size=64))
    session = await nexthop.open(port)
    big = BODY + b"x" * 100 + b"\r\n"
    body: Body = Pieces([big[:50], big[50:]]) if stream else big
    tx = await session.send(SENDER, ["a@example.com", "b@example.com"], body)

    assert tx.failure == OVER_SIZE
    assert tx.recipients == dict.fromkeys(["a@example.com", "b@example.com"], OVER_SIZE)
    assert outcomes(tx)["a@example.com"] is Outcome.PERMANENT
    assert tx.data_reply is None
    assert nexthop.mails(port) == []
    assert nexthop.delivered(port) == []
    if isinstance(body, Pieces):
        assert body.read == 0
    assert session.messages_sent == 0
    assert session.usable
    small = await session.send(SENDER, ["a@example.com"], BODY)
    assert small.failure is None
    assert nexthop.delivered(port) == [Got(SENDER, ["a@example.com"], BODY, [size_option(BODY)])]


async def test_smtputf8_needed_but_not_offered(nexthop: NextHop) -> None:
    port = nexthop.serve(Peer(smtputf8=False))
    session = await nexthop.open(port)
    tx = await session.send(SENDER, ["jörg@example.com", "a@example.com"], BODY)
    assert tx.failure == NO_SMTPUTF8
    assert tx.recipients == dict.fromkeys(["jörg@example.com", "a@example.com"], NO_SMTPUTF8)
    asked = await session.send(SENDER, ["a@example.com"], BODY, smtputf8=True)
    assert asked.failure == NO_SMTPUTF8
    assert nexthop.mails(port) == []
    assert session.usable
    assert (await session.send(SENDER, ["a@example.com"], BODY)).failure is None


# --- the connection ----------------------------------------------------------------------------------

@pytest.mark.parametrize("host", [IP, "mx.example.net"])
async def test_connection_refused(nexthop: NextHop, host: str) -> None:
    port = nexthop.unused_port()
    with pytest.raises(ConnectionFailure) as info:
        await nexthop.open(port, host=host)
    where = f"{IP}:{port}" if host == IP else f"{host} ({IP}:{port})"
    assert info.value.reply == Reply(441, "4.4.1", f"Failed to connect to {where}: connection refused")
    assert info.value.reply.temporary
    assert info.value.stage == "connect"


async def test_tls_required_but_not_offered(nexthop: NextHop) -> None:
    port = nexthop.serve(Peer())
    with pytest.raises(ConnectionFailure) as info:
        await nexthop.open(port, host="mx.example.net", tls=TlsPlan(required=True))
    assert info.value.reply == Reply(451, "4.4.0", (
        f"TLS is required but mx.example.net ({IP}:{port}) did not offer STARTTLS "
        "(not supported, or stripped on the way); nothing was sent"))
    assert info.value.stage == "starttls"
    assert nexthop.mails(port) == []


async def test_opportunistic_starttls(nexthop: NextHop) -> None:
    port = nexthop.serve(Peer(starttls=True))
    seen: list[dict[str, Any]] = []

    def verify_peer(cert: dict[str, Any]) -> str | None:
        seen.append(cert)
        return None

    session = await nexthop.open(port, tls=TlsPlan(verify_peer=verify_peer))
    assert session.tls_version == "TLSv1.3"
    assert session.tls_cipher and session.tls_cipher.startswith("TLS_")
    assert seen == [{}]  # unverified (no context given): the peer certificate is not parsed
    assert isinstance(session, ClientConnection | FakeSession)
    assert not session.supports("starttls")  # EHLO again over TLS
    assert (await session.send(SENDER, ["a@example.com"], BODY)).failure is None
    assert nexthop.delivered(port) == [Got(SENDER, ["a@example.com"], BODY, [size_option(BODY)])]


async def test_peer_certificate_refused(nexthop: NextHop) -> None:
    port = nexthop.serve(Peer(starttls=True))
    with pytest.raises(ConnectionFailure) as info:
        await nexthop.open(port, tls=TlsPlan(verify_peer=lambda cert: "not mx.example.net"))
    assert info.value.reply == Reply(451, "4.4.0", f"TLS certificate name mismatch at {IP}:{port}: not mx.example.net")
    assert info.value.stage == "starttls"
    assert nexthop.mails(port) == []


async def test_implicit_tls_to_a_peer_speaking_smtp(nexthop: NextHop) -> None:
    port = nexthop.serve(Peer())
    with pytest.raises(ConnectionFailure) as info:
        await nexthop.open(port, tls=TlsPlan(implicit=True))
    assert info.value.reply == Reply(451, "4.4.0", f"TLS negotiation with {IP}:{port} failed: WRONG_VERSION_NUMBER")
    assert info.value.stage == "connect"


async def test_auth_accepted(nexthop: NextHop) -> None:
    port = nexthop.serve(Peer(credentials={"relay": "s3cret"}))
    session = await nexthop.open(port, auth=AuthPlan("relay", "s3cret"))
    assert isinstance(session, ClientConnection | FakeSession)
    assert session.authenticated_as == "relay"
    assert (await session.send(SENDER, ["a@example.com"], BODY)).failure is None


@pytest.mark.parametrize(("peer", "plan", "text"), [
    (Peer(credentials={"relay": "s3cret"}), AuthPlan("relay", "wrong"),
     "AUTH PLAIN as relay to {where} was refused: 535 5.7.8 Authentication credentials invalid"),
    (Peer(), AuthPlan("relay", "s3cret"),
     "{where} offers no usable AUTH mechanism: wanted PLAIN or LOGIN, offered none"),
    (Peer(credentials={"relay": "s3cret"}), AuthPlan("relay", "s3cret", require_tls=True),
     "BasicAuthRequireTLS: {where} did not offer TLS, so the credentials were not sent"),
], ids=["wrong-secret", "not-offered", "tls-required"])
async def test_auth_failure_is_a_connection_failure(nexthop: NextHop, peer: Peer, plan: AuthPlan, text: str) -> None:
    port = nexthop.serve(peer)
    with pytest.raises(ConnectionFailure) as info:
        await nexthop.open(port, host="smarthost.example.net", auth=plan)
    where = f"smarthost.example.net ({IP}:{port})"
    assert info.value.reply == Reply(451, "4.7.0", text.format(where=where))
    assert info.value.stage == "auth"
    assert nexthop.mails(port) == []


@pytest.mark.parametrize("where", ["mail", "rcpt", "data"])
async def test_peer_disconnects_mid_transaction(nexthop: NextHop, where: Disconnect) -> None:
    port = nexthop.serve(Peer(disconnect=where, rcpt={"gone@example.com": "550 5.1.1 User unknown"}))
    session = await nexthop.open(port)
    rcpts = ["gone@example.com", "a@example.com"] if where == "data" else ["a@example.com", "b@example.com"]
    tx = await session.send(SENDER, rcpts, BODY)

    # Every recipient, one refused at RCPT too: the whole attempt is retried elsewhere.
    assert tx.failure == ABRUPT
    assert tx.recipients == dict.fromkeys(rcpts, ABRUPT)
    assert tx.data_reply is None
    assert nexthop.delivered(port) == []
    assert session.messages_sent == 0
    assert not session.usable


async def test_peer_closes_an_idle_session(nexthop: NextHop) -> None:
    port = nexthop.serve(Peer())
    session = await nexthop.open(port)
    assert (await session.send(SENDER, ["a@example.com"], BODY)).failure is None
    await nexthop.peer_closes(port)
    assert session.usable  # in clear text nothing tells until the next command
    tx = await session.send(SENDER, ["b@example.com"], BODY)
    assert tx.failure == ABRUPT
    assert tx.recipients == {"b@example.com": ABRUPT}
    assert not session.usable
    assert session.messages_sent == 1
    assert [g.recipients for g in nexthop.delivered(port)] == [["a@example.com"]]


# --- streamed bodies ---------------------------------------------------------------------------------

STREAMS = {
    "dot-after-boundary": [b"Subject: pieces\r\n\r\nfirst\r\n", b".starts a piece\r\n", b"..two dots\r\n",
                           b"split CR\r", b"\n.after split\r\n", b"last\r\n"],
    "dot-alone-after-boundary": [b"Subject: p\r\n\r\nx\r\n", b".", b"\r\n", b"y\r\n"],
    "starts-with-dot": [b".", b"first\r\n", b"end"],
    "empty-pieces": [b"", b"a\r\n", b"", b".b\r\n", b""],
}


@pytest.mark.parametrize("pieces", list(STREAMS.values()), ids=list(STREAMS))
async def test_streamed_body_arrives_intact(nexthop: NextHop, pieces: list[bytes]) -> None:
    port = nexthop.serve(Peer())
    session = await nexthop.open(port)
    body = Pieces(pieces)
    tx = await session.send(SENDER, ["a@example.com"], body)

    whole = b"".join(pieces)
    expected = whole if not whole or whole.endswith(b"\r\n") else whole + b"\r\n"
    assert tx.failure is None
    assert tx.recipients["a@example.com"].outcome is Outcome.DELIVERED
    assert nexthop.delivered(port) == [Got(SENDER, ["a@example.com"], expected, [f"SIZE={len(whole)}"])]
    assert session.messages_sent == 1


async def test_unreadable_stream_drops_the_connection(nexthop: NextHop) -> None:
    port = nexthop.serve(Peer())
    session = await nexthop.open(port)
    body = Pieces([b"Subject: gone\r\n\r\n", b"part two\r\n", b"never\r\n"], fail_at=1)
    tx = await session.send(SENDER, ["a@example.com", "b@example.com"], body)

    lost = Reply(451, "4.3.0", "the message could not be read from the queue: the message file is gone")
    assert tx.failure == lost
    assert tx.recipients == dict.fromkeys(["a@example.com", "b@example.com"], lost)
    assert not session.usable
    assert session.messages_sent == 0
    assert nexthop.delivered(port) == []


# --- one session, several transactions ---------------------------------------------------------------

async def test_session_carries_two_transactions(nexthop: NextHop) -> None:
    port = nexthop.serve(Peer())
    session = await nexthop.open(port)
    assert session.messages_sent == 0
    first = await session.send(SENDER, ["a@example.com"], BODY)
    assert session.messages_sent == 1
    second_body = BODY.replace(b"Hello.", b"Second.")
    second = await session.send("other@example.org", ["b@example.com", "c@example.com"], Pieces([second_body]))
    assert session.messages_sent == 2

    assert first.failure is None and second.failure is None
    assert session.usable
    assert nexthop.connections(port) == 1
    assert nexthop.delivered(port) == [
        Got(SENDER, ["a@example.com"], BODY, [size_option(BODY)]),
        Got("other@example.org", ["b@example.com", "c@example.com"], second_body, [size_option(second_body)]),
    ]


async def test_close_is_final(nexthop: NextHop) -> None:
    port = nexthop.serve(Peer())
    session = await nexthop.open(port)
    await session.close()
    assert not session.usable
    await session.close()  # twice is harmless
    assert not session.usable

