"""Shared helpers for the SMTP protocol tests: a raw line client, TLS material, free ports."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from dataclasses import dataclass, field

import trustme

# RFC 3463 enhanced status code right after the reply code, on every line of a 4xx/5xx reply.
ENHANCED_LINE = re.compile(r"^\d{3}[ -]\d\.\d{1,3}\.\d{1,3}")

# Generous bound so a broken server fails the test instead of hanging it; never a speed check.
IO_TIMEOUT = 10.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class TlsMaterial:
    ca: trustme.CA
    server: ssl.SSLContext
    client: ssl.SSLContext


def make_tls_material() -> TlsMaterial:
    """A throwaway CA, a server context for localhost/127.0.0.1 and a client context trusting it."""
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client)
    return TlsMaterial(ca=ca, server=server, client=client)


@dataclass(frozen=True)
class RawReply:
    code: int
    lines: list[str]

    @property
    def enhanced(self) -> str:
        """The enhanced status code of the first line ('' when there is none)."""
        m = re.match(r"^\d{3}[ -](\d\.\d{1,3}\.\d{1,3})", self.lines[0])
        return m.group(1) if m else ""

    @property
    def texts(self) -> list[str]:
        """Each line without the code and separator."""
        return [line[4:] for line in self.lines]

    @property
    def keywords(self) -> list[str]:
        """EHLO keywords: every line after the greeting line."""
        return [t.strip() for t in self.texts[1:]]

    def __str__(self) -> str:
        return "\n".join(self.lines)


@dataclass
class RawClient:
    """A minimal SMTP peer over asyncio streams: send lines, read (multi-line) replies."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    replies: list[RawReply] = field(default_factory=list)

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1") -> RawClient:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), IO_TIMEOUT)
        return cls(reader, writer)

    async def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.writer.write(data)
        await self.writer.drain()

    async def read_reply(self) -> RawReply:
        lines: list[str] = []
        while True:
            raw = await asyncio.wait_for(self.reader.readline(), IO_TIMEOUT)
            if not raw:
                raise AssertionError(f"connection closed while reading a reply (got {lines!r})")
            assert raw.endswith(b"\r\n"), f"reply line not CRLF-terminated: {raw!r}"
            line = raw[:-2].decode("utf-8")
            assert re.match(r"^\d{3}([ -]|$)", line), f"malformed reply line: {line!r}"
            if lines:
                assert line[:3] == lines[0][:3], f"reply code changed inside a multi-line reply: {lines!r} {line!r}"
            lines.append(line)
            if len(line) == 3 or line[3] == " ":
                break
        reply = RawReply(int(lines[0][:3]), lines)
        if reply.code >= 400:
            for line in lines:
                assert ENHANCED_LINE.match(line), f"{reply.code} reply without an enhanced status code: {line!r}"
        self.replies.append(reply)
        return reply

    async def cmd(self, line: str | bytes) -> RawReply:
        if isinstance(line, str):
            line = line.encode("utf-8")
        await self.send(line + b"\r\n")
        return await self.read_reply()

    async def ehlo(self, name: str = "client.example") -> RawReply:
        reply = await self.cmd(f"EHLO {name}")
        assert reply.code == 250, str(reply)
        return reply

    async def expect_eof(self) -> None:
        """The server closed the connection with nothing more to say."""
        rest = await asyncio.wait_for(self.reader.read(), IO_TIMEOUT)
        assert rest == b"", f"expected the server to close, got {rest!r}"

    async def starttls(self, context: ssl.SSLContext, server_hostname: str = "localhost") -> None:
        await self.writer.start_tls(context, server_hostname=server_hostname, ssl_handshake_timeout=IO_TIMEOUT)

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), IO_TIMEOUT)
        except (ConnectionError, ssl.SSLError, TimeoutError):
            pass
