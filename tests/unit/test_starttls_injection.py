"""STARTTLS command injection on the receive side (the CVE-2011-0411 class), deterministically.

A hostile client sends plaintext while the server's ``220`` is still draining; with the
old code those bytes sat in the StreamReader and were read as if they came over TLS.
Here the drain is a fake that lets the injection arrive at exactly that moment, and the
"handshake" keeps the reader as it is, so whatever the server reads afterwards is what
it would have taken as encrypted input.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from mailhop.smtp.server import ServerOptions, SMTPServer, _Connection
from tests.unit.test_smtp_server import FakeHandler


class DrainingWriter:
    """A StreamWriter whose drain lets the test feed the reader while it waits."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.written = bytearray()
        self.during_next_drain: bytes | None = None
        self.tls_started = False
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    async def drain(self) -> None:
        if self.during_next_drain is not None and b"220 2.0.0" in self.written:
            self.reader.feed_data(self.during_next_drain)  # arrives while the 220 drains
            self.during_next_drain = None
        await asyncio.sleep(0)

    async def start_tls(self, context: ssl.SSLContext, **_: Any) -> None:
        self.tls_started = True
        self.reader.feed_data(b"EHLO after.example\r\nQUIT\r\n")  # what came over "TLS"

    def get_extra_info(self, name: str) -> Any:
        return {"peername": ("192.0.2.7", 40000), "sockname": ("192.0.2.1", 25)}.get(name)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    async def wait_closed(self) -> None:
        return None


async def run_session(during_drain: bytes, pipelined: bytes = b"") -> tuple[FakeHandler, DrainingWriter]:
    handler = FakeHandler()
    server = SMTPServer(handler, ServerOptions(hostname="mx.test", tls_context=ssl.create_default_context()))
    reader = asyncio.StreamReader()
    writer = DrainingWriter(reader)
    writer.during_next_drain = during_drain
    reader.feed_data(b"EHLO client.example\r\nSTARTTLS\r\n" + pipelined)
    conn = _Connection(server, reader, writer)  # type: ignore[arg-type]
    await asyncio.wait_for(conn.run(), 10)
    return handler, writer


async def test_plaintext_arriving_while_the_220_drains_is_not_read_after_the_handshake() -> None:
    handler, writer = await run_session(b"EHLO evil.example\r\nMAIL FROM:<evil@attacker.test>\r\n")
    assert writer.tls_started
    assert handler.mails == []  # the injected MAIL never reached the handler
    assert handler.sessions[-1].helo == "after.example"  # the first command after TLS is the client's
    assert b"221 2.0.0" in writer.written


async def test_plaintext_pipelined_behind_starttls_is_not_read_after_the_handshake() -> None:
    handler, _ = await run_session(b"", pipelined=b"EHLO evil.example\r\nMAIL FROM:<evil@attacker.test>\r\n")
    assert handler.mails == []
    assert handler.sessions[-1].helo == "after.example"
