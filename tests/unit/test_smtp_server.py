"""Protocol tests for mailhop.smtp.server over real loopback sockets.

A fake Handler records every decision the state machine delegates; a raw
asyncio-stream client (tests/unit/smtp_helpers.py) speaks the wire and checks,
for every reply it reads, that a 4xx/5xx reply carries an enhanced status code.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from mailhop.outcome import Reply
from mailhop.smtp.server import DataSink, Envelope, ServerOptions, Session, SMTPServer
from mailhop.testing.clock import VirtualClock
from tests.support.wait import async_wait_for
from tests.unit.smtp_helpers import (
    ENHANCED_LINE,
    IO_TIMEOUT,
    RawClient,
    TlsMaterial,
    make_tls_material,
)

HOSTNAME = "mx.test.example"
MAIL_OK = Reply(250, "2.1.0", "Sender OK")
DATA_OK = Reply(250, "2.0.0", "Queued")
AUTH_OK = Reply(235, "2.7.0", "Authentication successful")


class HandlerBoom(RuntimeError):
    pass


class BytesSink:
    """The body as the server hands it over, in pieces, kept whole for the test."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.writes = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data
        self.writes += 1

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeHandler:
    """Records calls; replies are configurable; ``explode`` names hooks that raise once."""

    sessions: list[Session] = field(default_factory=list)
    mails: list[str] = field(default_factory=list)
    rcpts: list[str] = field(default_factory=list)
    data: list[bytes] = field(default_factory=list)
    data_envelopes: list[tuple[str | None, list[str]]] = field(default_factory=list)
    auths: list[tuple[str, str]] = field(default_factory=list)
    mail_reply: Reply = MAIL_OK
    rcpt_replies: dict[str, Reply] = field(default_factory=dict)
    data_reply: Reply = DATA_OK
    auth_reply: Reply = AUTH_OK
    explode: set[str] = field(default_factory=set)

    def _maybe_explode(self, hook: str) -> None:
        if hook in self.explode:
            self.explode.discard(hook)
            raise HandlerBoom(hook)

    async def on_connect(self, session: Session) -> Reply | None:
        self.sessions.append(session)
        return None

    async def on_mail(self, session: Session, envelope: Envelope) -> Reply:
        self.mails.append(envelope.mail_from)
        self._maybe_explode("mail")
        return self.mail_reply

    async def on_rcpt(self, session: Session, envelope: Envelope, address: str) -> Reply:
        self.rcpts.append(address)
        self._maybe_explode("rcpt")
        return self.rcpt_replies.get(address, Reply(250, "2.1.5", "Recipient OK"))

    def data_sink(self, session: Session, envelope: Envelope) -> BytesSink:
        return BytesSink()

    async def on_data(self, session: Session, envelope: Envelope, sink: DataSink) -> Reply:
        assert isinstance(sink, BytesSink)
        self._maybe_explode("data")
        self.data.append(bytes(sink.data))
        self.data_envelopes.append((envelope.mail_from, list(envelope.rcpt_to)))
        return self.data_reply

    async def on_auth(self, session: Session, user: str, password: str) -> Reply:
        self.auths.append((user, password))
        return self.auth_reply


@dataclass
class Running:
    server: SMTPServer
    handler: FakeHandler
    port: int

    @property
    def session(self) -> Session:
        assert self.handler.sessions, "no session was opened"
        return self.handler.sessions[-1]


class Harness:
    def __init__(self) -> None:
        self.servers: list[SMTPServer] = []
        self.clients: list[RawClient] = []

    async def start(self, handler: FakeHandler | None = None, **options: Any) -> Running:
        handler = handler or FakeHandler()
        server = SMTPServer(handler, ServerOptions(hostname=HOSTNAME, **options))
        await server.start("127.0.0.1", 0)
        self.servers.append(server)
        sock: Any = server.sockets[0]
        return Running(server, handler, int(sock.getsockname()[1]))

    async def connect(self, running: Running, banner: bool = True) -> RawClient:
        client = await RawClient.connect(running.port)
        self.clients.append(client)
        if banner:
            greeting = await client.read_reply()
            assert greeting.code == 220, str(greeting)
        return client

    async def session(self, running: Running, ehlo: str | None = "client.example") -> RawClient:
        client = await self.connect(running)
        if ehlo is not None:
            await client.ehlo(ehlo)
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        for server in self.servers:
            await server.stop(5)


@pytest.fixture
async def smtp() -> AsyncIterator[Harness]:
    harness = Harness()
    try:
        yield harness
    finally:
        await harness.close()


@pytest.fixture(scope="module")
def tls() -> TlsMaterial:
    return make_tls_material()


async def transaction(client: RawClient, sender: str, recipients: list[str]) -> None:
    reply = await client.cmd(f"MAIL FROM:<{sender}>")
    assert reply.code == 250, str(reply)
    for rcpt in recipients:
        reply = await client.cmd(f"RCPT TO:<{rcpt}>")
        assert reply.code == 250, str(reply)


async def send_data(client: RawClient, raw_body: bytes) -> Reply:
    """DATA, then ``raw_body`` exactly as given (it must include the terminator)."""
    reply = await client.cmd("DATA")
    assert reply.code == 354, str(reply)
    await client.send(raw_body)
    final = await client.read_reply()
    return Reply(final.code, final.enhanced, final.texts[0])


# --- greeting and EHLO ---------------------------------------------------------------------


async def test_banner_is_220_with_hostname(smtp: Harness) -> None:
    running = await smtp.start()
    client = await smtp.connect(running, banner=False)
    banner = await client.read_reply()
    assert banner.code == 220
    assert HOSTNAME in banner.lines[0]


async def test_ehlo_lists_extensions_without_tls_or_auth(smtp: Harness) -> None:
    running = await smtp.start(max_message_size=1000, auth_enabled=True)
    client = await smtp.connect(running)
    reply = await client.ehlo()
    assert reply.code == 250
    assert len(reply.lines) > 1
    assert all(line.startswith("250-") for line in reply.lines[:-1])
    assert reply.lines[-1].startswith("250 ")
    keywords = reply.keywords
    for kw in ("SIZE 1000", "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8"):
        assert kw in keywords, keywords
    assert "STARTTLS" not in keywords
    # auth_enabled but AUTH requires TLS (the default) and there is no TLS: no AUTH.
    assert not any(k.upper().startswith("AUTH") for k in keywords)
    assert running.session.esmtp is True
    assert running.session.helo == "client.example"


async def test_ehlo_offers_starttls_only_with_tls_context(smtp: Harness, tls: TlsMaterial) -> None:
    running = await smtp.start(tls_context=tls.server)
    client = await smtp.connect(running)
    keywords = (await client.ehlo()).keywords
    assert "STARTTLS" in keywords
    assert not any(k.upper().startswith("AUTH") for k in keywords)


async def test_auth_offered_in_clear_when_tls_not_required(smtp: Harness) -> None:
    running = await smtp.start(auth_enabled=True, auth_requires_tls=False)
    client = await smtp.connect(running)
    assert "AUTH PLAIN LOGIN" in (await client.ehlo()).keywords


async def test_auth_requiring_tls_offered_only_after_starttls(smtp: Harness, tls: TlsMaterial) -> None:
    running = await smtp.start(tls_context=tls.server, auth_enabled=True)
    client = await smtp.connect(running)
    before = (await client.ehlo()).keywords
    assert "STARTTLS" in before
    assert not any(k.upper().startswith("AUTH") for k in before)

    assert (await client.cmd("STARTTLS")).code == 220
    await client.starttls(tls.client)
    after = (await client.ehlo()).keywords
    assert "AUTH PLAIN LOGIN" in after
    assert "STARTTLS" not in after


# --- enhanced status codes -----------------------------------------------------------------


async def test_every_error_reply_carries_an_enhanced_status_code(smtp: Harness) -> None:
    handler = FakeHandler(rcpt_replies={
        "gone@example.com": Reply(550, "5.1.1", "User unknown"),
        "later@example.com": Reply(450, "4.2.0", "Mailbox busy"),
    })
    running = await smtp.start(handler, max_message_size=100, max_recipients=2)
    client = await smtp.connect(running)
    for line in [
        "MAIL FROM:<a@example.com>",       # before EHLO
        "BOGUS",                           # unknown
        "EHLO",                            # missing argument
        "STARTTLS",                        # not configured
        "AUTH PLAIN",                      # not offered
        "EHLO client.example",
        "RCPT TO:<x@example.com>",         # before MAIL
        "DATA",                            # before MAIL
        "MAIL FROM:<not-an-address>",      # bad syntax
        "MAIL FROM:<a@example.com> SIZE=101",
        "MAIL FROM:<a@example.com> FROBNICATE=1",
        "MAIL FROM:<a@example.com>",
        "DATA",                            # no recipients
        "RCPT TO:<gone@example.com>",
        "RCPT TO:<later@example.com>",
        "RCPT TO:<r1@example.com>",
        "RCPT TO:<r2@example.com>",
        "RCPT TO:<r3@example.com>",        # over max_recipients
        "RCPT TO:<r4@example.com> NOTIFY=NEVER",
    ]:
        await client.cmd(line)
    errors = [r for r in client.replies if r.code >= 400]
    assert {r.code for r in errors} >= {500, 501, 502, 503, 550, 450, 452, 552, 555}
    for reply in errors:
        for line in reply.lines:
            assert ENHANCED_LINE.match(line), line
        assert reply.enhanced[0] == str(reply.code)[0], str(reply)


# --- command order and syntax --------------------------------------------------------------


async def test_mail_before_ehlo_is_503(smtp: Harness) -> None:
    running = await smtp.start()
    client = await smtp.session(running, ehlo=None)
    reply = await client.cmd("MAIL FROM:<a@example.com>")
    assert (reply.code, reply.enhanced) == (503, "5.5.1")
    assert running.handler.mails == []


async def test_rcpt_before_mail_is_503(smtp: Harness) -> None:
    running = await smtp.start()
    client = await smtp.session(running)
    reply = await client.cmd("RCPT TO:<b@example.com>")
    assert (reply.code, reply.enhanced) == (503, "5.5.1")
    assert running.handler.rcpts == []


async def test_data_before_mail_is_503(smtp: Harness) -> None:
    running = await smtp.start()
    client = await smtp.session(running)
    reply = await client.cmd("DATA")
    assert (reply.code, reply.enhanced) == (503, "5.5.1")


async def test_data_before_rcpt_is_refused(smtp: Harness) -> None:
    running = await smtp.start()
    client = await smtp.session(running)
    assert (await client.cmd("MAIL FROM:<a@example.com>")).code == 250
    reply = await client.cmd("DATA")
    assert reply.code in (503, 554), str(reply)
    assert reply.enhanced == "5.5.1"
    # Nothing was read as message data: the session still takes commands.
    assert (await client.cmd("NOOP")).code == 250
    assert running.handler.data == []


async def test_nested_mail_is_503(smtp: Harness) -> None:
    running = await smtp.start()
    client = await smtp.session(running)
    assert (await client.cmd("MAIL FROM:<a@example.com>")).code == 250
    reply = await client.cmd("MAIL FROM:<b@example.com>")
    assert (reply.code, reply.enhanced) == (503, "5.5.1")
    assert running.handler.mails == ["a@example.com"]


@pytest.mark.parametrize("path", [
    "<no-at-sign>",
    "<user@>",
    "<.user@example.com>",
    "<a b@example.com>",
    "<user@exa_mple.com>",
    "<user@[999.1.1.1]>",
    "<user@@example.com>",
    "<@example.com>",
])
async def test_bad_sender_syntax_is_501_5_1_7(smtp: Harness, path: str) -> None:
    running = await smtp.start()
    client = await smtp.session(running)
    reply = await client.cmd(f"MAIL FROM:{path}")
    assert (reply.code, reply.enhanced) == (501, "5.1.7"), str(reply)
    assert running.handler.mails == []


@pytest.mark.parametrize("path", [
    "<no-at-sign>",
    "<>",
    "<user@>",
    "<a b@example.com>",
    "<@example.com>",
    "<user@@example.com>",
])
async def test_bad_recipient_syntax_is_501_5_1_3(smtp: Harness, path: str) -> None:
    running = await smtp.start()
    client = await smtp.session(running)
    assert (await client.cmd("MAIL FROM:<a@example.com>")).code == 250
    reply = await client.cmd(f"RCPT TO:{path}")
    assert (reply.code, reply.enhanced) == (501, "5.1.3"), str(reply)
    assert running.handler.rcpts == []


async def test_null_sender_is_accepted(smtp: Harness) -> None:
    running = await smtp.start()
    client = await smtp.session(running)
    assert (await client.cmd("MAIL FROM:<>")).code == 250
    assert running.handler.mails == [""]


async def test_unknown_command_is_500_5_5_2(smtp: Harness) -> None:
    running = await smtp.start()
    client = await smtp.session(running)
    reply = await client.cmd("XYZZY plugh")
    assert (reply.code, reply.enhanced) == (500, "5.5.2")
    assert (await client.cmd("NOOP")).code == 250


@pytest.mark.parametrize("length", [5000, 300_000])
async def test_overlong_command_line_is_500_and_session_continues(smtp: Harness, length: int) -> None:
    running = await smtp.start()
    client = await smtp.session(running)
    reply = await client.cmd("NOOP " + "x" * length)
    assert (reply.code, reply.enhanced) == (500, "5.5.2")
    # The rest of the long line was discarded, not parsed as commands.
    assert (await client.cmd("NOOP")).code == 250
    await transaction(client, "a@example.com", ["b@example.com"])
    assert running.handler.mails == ["a@example.com"]


async def test_too_many_errors_gets_421_and_close(smtp: Harness) -> None:
    running = await smtp.start()
    client = await smtp.connect(running)
    for _ in range(9):
        assert (await client.cmd("BOGUS")).code == 500
    assert (await client.cmd("NOOP")).code == 250  # nine errors: still talking
    assert (await client.cmd("BOGUS")).code == 500
    final = await client.read_reply()
    assert (final.code, final.enhanced) == (421, "4.7.0")
    await client.expect_eof()


# --- transaction ---------------------------------------------------------------------------


async def test_rset_clears_the_transaction(smtp: Harness) -> None:
    running = await smtp.start()
    client = await smtp.session(running)
    await transaction(client, "a@example.com", ["b@example.com"])
    reply = await client.cmd("RSET")
    assert (reply.code, reply.enhanced) == (250, "2.0.0")
    assert running.session.envelope is None
    assert (await client.cmd("RCPT TO:<c@example.com>")).code == 503
    assert (await client.cmd("DATA")).code == 503
    # A new MAIL is not "nested"; its transaction only has its own recipients.
    await transaction(client, "x@example.com", ["y@example.com"])
    assert (await send_data(client, b"Subject: t\r\n\r\nhi\r\n.\r\n")).code == 250
    assert running.handler.data_envelopes == [("x@example.com", ["y@example.com"])]


async def test_quit_is_221_and_closes(smtp: Harness) -> None:
    running = await smtp.start()
    client = await smtp.session(running)
    reply = await client.cmd("QUIT")
    assert (reply.code, reply.enhanced) == (221, "2.0.0")
    await client.expect_eof()


async def test_max_recipients_is_452_4_5_3(smtp: Harness) -> None:
    running = await smtp.start(max_recipients=2)
    client = await smtp.session(running)
    await transaction(client, "a@example.com", ["r1@example.com", "r2@example.com"])
    reply = await client.cmd("RCPT TO:<r3@example.com>")
    assert (reply.code, reply.enhanced) == (452, "4.5.3")
    assert "r3@example.com" not in running.handler.rcpts
    assert (await send_data(client, b"x\r\n.\r\n")).code == 250
    assert running.handler.data_envelopes == [("a@example.com", ["r1@example.com", "r2@example.com"])]


async def test_mail_size_over_limit_is_552_5_3_4(smtp: Harness) -> None:
    running = await smtp.start(max_message_size=1000)
    client = await smtp.session(running)
    reply = await client.cmd("MAIL FROM:<a@example.com> SIZE=1001")
    assert (reply.code, reply.enhanced) == (552, "5.3.4")
    assert running.handler.mails == []
    assert (await client.cmd("MAIL FROM:<a@example.com> SIZE=1000")).code == 250


def _body_of(size: int) -> bytes:
    """CRLF-terminated ASCII lines totalling exactly ``size`` bytes (no dot-stuffing needed)."""
    line = b"x" * 70 + b"\r\n"
    body = line * (size // len(line))
    rest = size - len(body)
    if rest:
        body += b"y" * (rest - 2) + b"\r\n" if rest >= 2 else b""
    if len(body) != size:  # rest == 1: lengthen one line instead
        body = b"z" + body
    assert len(body) == size and body.endswith(b"\r\n")
    return body


async def test_data_at_the_limit_is_accepted(smtp: Harness) -> None:
    running = await smtp.start(max_message_size=1000)
    client = await smtp.session(running)
    await transaction(client, "a@example.com", ["b@example.com"])
    body = _body_of(1000)
    reply = await send_data(client, body + b".\r\n")
    assert reply.code == 250
    assert running.handler.data == [body]


@pytest.mark.parametrize("size", [1001, 300_000])
async def test_data_over_limit_is_552_and_not_handed_over(smtp: Harness, size: int) -> None:
    running = await smtp.start(max_message_size=1000)
    client = await smtp.session(running)
    await transaction(client, "a@example.com", ["b@example.com"])
    reply = await send_data(client, _body_of(size) + b".\r\n")
    assert (reply.code, reply.enhanced) == (552, "5.3.4")
    assert running.handler.data == []
    # The whole body was consumed and the transaction reset; the session goes on.
    assert (await client.cmd("NOOP")).code == 250
    assert (await client.cmd("RCPT TO:<c@example.com>")).code == 503
    await transaction(client, "a@example.com", ["b@example.com"])
    assert (await send_data(client, b"small\r\n.\r\n")).code == 250
    assert running.handler.data == [b"small\r\n"]


async def test_pipelined_commands_get_replies_in_order(smtp: Harness) -> None:
    handler = FakeHandler(rcpt_replies={"nobody@example.com": Reply(550, "5.1.1", "User unknown")})
    running = await smtp.start(handler)
    client = await smtp.session(running)
    await client.send(
        b"MAIL FROM:<a@example.com>\r\n"
        b"RCPT TO:<b@example.com>\r\n"
        b"RCPT TO:<nobody@example.com>\r\n"
        b"DATA\r\n"
    )
    replies = [await client.read_reply() for _ in range(4)]
    assert [r.code for r in replies] == [250, 250, 550, 354]
    assert replies[2].enhanced == "5.1.1"
    await client.send(b"Subject: pipelined\r\n\r\nbody\r\n.\r\n")
    final = await client.read_reply()
    assert (final.code, final.enhanced) == (250, "2.0.0")
    assert handler.rcpts == ["b@example.com", "nobody@example.com"]
    assert handler.data_envelopes == [("a@example.com", ["b@example.com"])]
    assert handler.data == [b"Subject: pipelined\r\n\r\nbody\r\n"]


async def test_pipelined_transaction_with_body_in_one_write(smtp: Harness) -> None:
    running = await smtp.start()
    client = await smtp.session(running)
    await client.send(
        b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
        b"Subject: one write\r\n\r\nbody\r\n.\r\nNOOP\r\n"
    )
    codes = [(await client.read_reply()).code for _ in range(5)]
    assert codes == [250, 250, 354, 250, 250]
    assert running.handler.data == [b"Subject: one write\r\n\r\nbody\r\n"]


async def test_dot_unstuffing_and_terminator(smtp: Harness) -> None:
    running = await smtp.start()
    client = await smtp.session(running)
    await transaction(client, "a@example.com", ["b@example.com"])
    raw = b"..first\r\nline\r\n..x\r\n..\r\n...\r\nlast\r\n.\r\n"
    assert (await send_data(client, raw)).code == 250
    (body,) = running.handler.data
    assert body == b".first\r\nline\r\n.x\r\n.\r\n..\r\nlast\r\n"
    assert body.endswith(b"\r\n")
    assert not body.endswith(b".\r\n")


async def test_empty_body(smtp: Harness) -> None:
    running = await smtp.start()
    client = await smtp.session(running)
    await transaction(client, "a@example.com", ["b@example.com"])
    assert (await send_data(client, b".\r\n")).code == 250
    assert running.handler.data == [b""]


async def test_terminator_split_across_writes(smtp: Harness) -> None:
    running = await smtp.start()
    client = await smtp.session(running)
    await transaction(client, "a@example.com", ["b@example.com"])
    assert (await client.cmd("DATA")).code == 354
    for piece in (b"Subject: s\r\n\r\nab", b"c\r", b"\n", b".", b"\r", b"\n"):
        await client.send(piece)
    reply = await client.read_reply()
    assert reply.code == 250
    assert running.handler.data == [b"Subject: s\r\n\r\nabc\r\n"]


async def test_bare_lf_in_data_is_normalized_to_crlf(smtp: Harness) -> None:
    running = await smtp.start()
    client = await smtp.session(running)
    await transaction(client, "a@example.com", ["b@example.com"])
    assert (await send_data(client, b"Subject: lf\nX-A: 1\r\n\nbody\nend\r\n.\r\n")).code == 250
    (body,) = running.handler.data
    assert body == b"Subject: lf\r\nX-A: 1\r\n\r\nbody\r\nend\r\n"
    assert re.search(rb"(?<!\r)\n", body) is None


async def test_bare_lf_dot_does_not_end_data(smtp: Harness) -> None:
    """SMTP smuggling: only CRLF.CRLF ends the body; LF.CRLF is message content."""
    running = await smtp.start()
    client = await smtp.session(running)
    await transaction(client, "a@example.com", ["b@example.com"])
    raw = b"Subject: s\r\n\r\nhi\n.\r\nMAIL FROM:<smuggled@example.com>\r\n.\r\n"
    assert (await send_data(client, raw)).code == 250
    assert (await client.cmd("NOOP")).code == 250
    assert running.handler.mails == ["a@example.com"]
    (body,) = running.handler.data
    assert b"smuggled@example.com" in body


async def test_handler_exception_is_451_and_session_continues(smtp: Harness) -> None:
    handler = FakeHandler(explode={"mail", "data"})
    running = await smtp.start(handler)
    client = await smtp.session(running)
    reply = await client.cmd("MAIL FROM:<a@example.com>")
    assert (reply.code, reply.enhanced) == (451, "4.3.0")
    assert running.session.envelope is None
    await transaction(client, "a@example.com", ["b@example.com"])
    reply_data = await send_data(client, b"first\r\n.\r\n")
    assert (reply_data.code, reply_data.enhanced) == (451, "4.3.0")
    assert handler.data == []
    await transaction(client, "a@example.com", ["b@example.com"])
    assert (await send_data(client, b"second\r\n.\r\n")).code == 250
    assert handler.data == [b"second\r\n"]


# --- timeouts and shutdown -----------------------------------------------------------------


async def test_idle_timeout_sends_421_and_closes(smtp: Harness) -> None:
    clock = VirtualClock()
    running = await smtp.start(idle_timeout=300, clock=clock)
    client = await smtp.session(running)
    await clock.advance(299)
    assert (await client.cmd("NOOP")).code == 250  # not a moment early
    await clock.advance(300)
    reply = await client.read_reply()  # nothing sent: the server must speak first
    assert (reply.code, reply.enhanced) == (421, "4.4.2")
    await client.expect_eof()


async def test_idle_timeout_counts_from_the_last_command_not_the_session_start(smtp: Harness) -> None:
    clock = VirtualClock()
    running = await smtp.start(idle_timeout=300, session_timeout=7200, clock=clock)
    client = await smtp.session(running)
    for _ in range(6):  # 15 minutes in all, three times the idle timeout, never 300 s idle
        await clock.advance(150)
        assert (await client.cmd("NOOP")).code == 250
    await clock.advance(300)
    reply = await client.read_reply()
    assert (reply.code, reply.enhanced) == (421, "4.4.2")
    await client.expect_eof()


async def test_data_timeout_applies_while_the_body_is_read(smtp: Harness) -> None:
    clock = VirtualClock()
    running = await smtp.start(idle_timeout=60, data_timeout=600, session_timeout=7200, clock=clock)
    client = await smtp.session(running)
    await transaction(client, "a@example.com", ["b@example.com"])
    assert (await client.cmd("DATA")).code == 354
    await client.send(b"Subject: half a message\r\n")  # and then nothing
    await clock.advance(300)  # past the idle timeout, within the DATA timeout
    await client.send(b"\r\nstill coming\r\n")
    await clock.advance(600)
    reply = await client.read_reply()
    assert (reply.code, reply.enhanced) == (421, "4.4.2")
    await client.expect_eof()
    assert running.handler.data == []


async def test_a_session_that_keeps_busy_still_ends_at_the_session_deadline(smtp: Harness) -> None:
    """Slowloris: a client that sends a command just inside the idle timeout forever, or trickles
    its message, would hold its slot forever; connection_timeout ends the whole session."""
    clock = VirtualClock()
    running = await smtp.start(idle_timeout=300, session_timeout=600, clock=clock)
    client = await smtp.session(running)
    await transaction(client, "a@example.com", ["b@example.com"])
    assert (await client.cmd("DATA")).code == 354
    for _ in range(5):  # a line every 100 s: never idle, never done
        await clock.advance(100)
        await client.send(b"trickle\r\n")
    await clock.advance(101)
    reply = await client.read_reply()
    assert (reply.code, reply.enhanced) == (421, "4.3.2") and "Session time limit" in reply.lines[0]
    await client.expect_eof()
    assert running.handler.data == []  # nothing half-accepted


async def test_one_source_cannot_take_every_connection_slot(smtp: Harness) -> None:
    running = await smtp.start(max_connections=50, max_connections_per_source=3)
    clients = [await smtp.session(running) for _ in range(3)]
    refused = await smtp.connect(running, banner=False)
    reply = await refused.read_reply()
    assert (reply.code, reply.enhanced) == (421, "4.3.2") and "from your address" in reply.lines[0]
    await refused.expect_eof()
    assert (await clients[0].cmd("QUIT")).code == 221
    await clients[0].expect_eof()
    # The slot comes back once the server has seen the session end.
    await async_wait_for(lambda: sum(running.server._per_source.values()) == 2, what="the slot released")
    again = await smtp.session(running)  # a slot is free again
    assert (await again.cmd("NOOP")).code == 250


async def test_stop_sends_421_to_idle_client_and_closes(smtp: Harness) -> None:
    running = await smtp.start()
    client = await smtp.session(running)
    # A long grace: an idle session must be closed at once, not when the grace runs out.
    stopping = asyncio.create_task(running.server.stop(60))
    try:
        reply = await client.read_reply()
        assert (reply.code, reply.enhanced) == (421, "4.3.2")
        await client.expect_eof()
    finally:
        await asyncio.wait_for(stopping, IO_TIMEOUT)
    with pytest.raises(OSError):
        probe = await RawClient.connect(running.port)
        await probe.close()


# --- STARTTLS ------------------------------------------------------------------------------


async def test_starttls_sets_session_tls_and_requires_new_ehlo(smtp: Harness, tls: TlsMaterial) -> None:
    running = await smtp.start(tls_context=tls.server)
    client = await smtp.session(running)
    reply = await client.cmd("STARTTLS")
    assert reply.code == 220
    await client.starttls(tls.client)
    assert client.writer.get_extra_info("ssl_object") is not None

    # RFC 3207: the server forgot the EHLO.  (This round trip also guarantees that the
    # server side of the handshake has finished before its session is inspected.)
    reply = await client.cmd("MAIL FROM:<a@example.com>")
    assert (reply.code, reply.enhanced) == (503, "5.5.1")
    session = running.session
    assert session.helo is None
    assert session.tls is not None
    assert session.tls.version.startswith("TLSv")
    assert session.tls.cipher
    keywords = (await client.ehlo()).keywords
    assert "STARTTLS" not in keywords
    reply = await client.cmd("STARTTLS")
    assert reply.code == 503
    await transaction(client, "a@example.com", ["b@example.com"])
    assert (await send_data(client, b"over tls\r\n.\r\n")).code == 250
    assert running.handler.data == [b"over tls\r\n"]
    assert session.protocol == "ESMTPS"


async def test_data_pipelined_after_starttls_is_discarded(smtp: Harness, tls: TlsMaterial) -> None:
    running = await smtp.start(tls_context=tls.server)
    client = await smtp.session(running)
    await client.send(
        b"STARTTLS\r\n"
        b"EHLO injected.example\r\n"
        b"MAIL FROM:<injected@example.com>\r\n"
        b"RCPT TO:<victim@example.com>\r\n"
    )
    reply = await client.read_reply()
    assert reply.code == 220
    await client.starttls(tls.client)

    await client.ehlo("client.example")
    assert (await client.cmd("NOOP")).lines == ["250 2.0.0 OK"]
    assert running.handler.mails == []
    assert running.handler.rcpts == []
    assert running.session.helo == "client.example"
    assert running.session.envelope is None
    # The exchange is in step: our own transaction gets our own replies.
    await transaction(client, "a@example.com", ["b@example.com"])
    assert running.handler.mails == ["a@example.com"]


async def test_starttls_without_tls_context_is_502(smtp: Harness) -> None:
    running = await smtp.start()
    client = await smtp.session(running)
    reply = await client.cmd("STARTTLS")
    assert (reply.code, reply.enhanced) == (502, "5.5.1")
    assert (await client.cmd("NOOP")).code == 250


# --- AUTH ----------------------------------------------------------------------------------


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def test_auth_before_tls_is_538_when_tls_required(smtp: Harness, tls: TlsMaterial) -> None:
    running = await smtp.start(tls_context=tls.server, auth_enabled=True)
    client = await smtp.session(running)
    reply = await client.cmd("AUTH PLAIN " + _b64("\0user\0secret"))
    assert (reply.code, reply.enhanced) == (538, "5.7.11")
    assert running.handler.auths == []
    assert running.session.auth_user is None


async def test_auth_plain_initial_response_after_starttls(smtp: Harness, tls: TlsMaterial) -> None:
    running = await smtp.start(tls_context=tls.server, auth_enabled=True)
    client = await smtp.session(running)
    assert (await client.cmd("STARTTLS")).code == 220
    await client.starttls(tls.client)
    await client.ehlo()
    reply = await client.cmd("AUTH PLAIN " + _b64("\0alice@example.com\0s3cr\u00e9t"))
    assert reply.code == 235
    assert running.handler.auths == [("alice@example.com", "s3cr\u00e9t")]
    assert running.session.auth_user == "alice@example.com"
    assert running.session.protocol == "ESMTPSA"


async def test_auth_plain_empty_initial_response_gets_334(smtp: Harness) -> None:
    running = await smtp.start(auth_enabled=True, auth_requires_tls=False)
    client = await smtp.session(running)
    challenge = await client.cmd("AUTH PLAIN")
    assert challenge.code == 334
    reply = await client.cmd(_b64("\0bob\0pw"))
    assert reply.code == 235
    assert running.handler.auths == [("bob", "pw")]
    assert running.session.auth_user == "bob"


async def test_auth_login_with_334_challenges(smtp: Harness) -> None:
    running = await smtp.start(auth_enabled=True, auth_requires_tls=False)
    client = await smtp.session(running)
    first = await client.cmd("AUTH LOGIN")
    assert first.code == 334
    assert base64.b64decode(first.texts[0]).decode().lower().startswith("username")
    second = await client.cmd(_b64("carol"))
    assert second.code == 334
    assert base64.b64decode(second.texts[0]).decode().lower().startswith("password")
    reply = await client.cmd(_b64("hunter2"))
    assert reply.code == 235
    assert running.handler.auths == [("carol", "hunter2")]
    assert running.session.auth_user == "carol"
    # Authenticated: AUTH is no longer offered.
    assert not any(k.upper().startswith("AUTH") for k in (await client.ehlo()).keywords)


async def test_auth_refused_by_handler_leaves_session_unauthenticated(smtp: Harness) -> None:
    handler = FakeHandler(auth_reply=Reply(535, "5.7.8", "Authentication credentials invalid"))
    running = await smtp.start(handler, auth_enabled=True, auth_requires_tls=False)
    client = await smtp.session(running)
    reply = await client.cmd("AUTH PLAIN " + _b64("\0dave\0wrong"))
    assert (reply.code, reply.enhanced) == (535, "5.7.8")
    assert handler.auths == [("dave", "wrong")]
    assert running.session.auth_user is None
    # Failures are counted per address by the receive handler now (tests/unit/test_receive_auth.py).


async def test_auth_undecodable_response_is_501(smtp: Harness) -> None:
    running = await smtp.start(auth_enabled=True, auth_requires_tls=False)
    client = await smtp.session(running)
    reply = await client.cmd("AUTH PLAIN !!!not-base64!!!")
    assert reply.code == 501
    assert running.handler.auths == []
    assert running.session.auth_user is None


# --- hostile clients --------------------------------------------------------------------------


async def test_a_client_that_pipelines_and_never_reads_cannot_grow_the_servers_memory(smtp: Harness) -> None:
    """Replies pile up no further than OUT_CAP plus the transport's buffer; then the session stops
    reading (backpressure).  The old server held every reply while a partial line was buffered:
    42 MB for 3 MB sent."""
    out_cap = 64 * 1024  # mailhop.smtp.server.OUT_CAP
    running = await smtp.start()
    client = await smtp.connect(running)
    payload = b"EHLO client.example\r\n" + b"NOOP\r\n" * 500_000  # 3 MB of commands, 7 MB of replies

    async def push() -> None:
        view = memoryview(payload)
        for start in range(0, len(view), 65_536):
            client.writer.write(view[start:start + 65_536])
            await client.writer.drain()

    pusher = asyncio.create_task(push())
    [conn] = list(running.server._sessions.values())
    peak = 0
    for _ in range(20_000):  # turns of the loop, not time: the bound holds at every one of them
        await asyncio.sleep(0)
        held = sum(map(len, conn.out)) + conn.writer.transport.get_write_buffer_size()  # type: ignore[attr-defined]
        peak = max(peak, held)
        if pusher.done():
            break
    assert peak <= out_cap + 2 * 65_536, f"{peak} bytes of replies held for a client that does not read"
    pusher.cancel()
    await asyncio.gather(pusher, return_exceptions=True)
