"""How a scripted next hop behaves: its endpoints and what they record (see ``mailhop.testing.nexthop``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from mailhop.outcome import Reply

ScriptedReply = Reply | str
Disconnect = Literal["mail", "rcpt", "data"]

TLS_VERSION = "TLSv1.3"
TLS_CIPHER = "TLS_AES_256_GCM_SHA384"
AUTH_REFUSED = Reply(535, "5.7.8", "Authentication credentials invalid")
TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
_REPLY_TEXT = re.compile(r"^[2-5]\d\d(?:[ -]|$)")


def as_received(reply: ScriptedReply) -> Reply:
    """A scripted reply as the client reads it: written on the wire, parsed as ClientConnection parses."""
    if isinstance(reply, str):
        if not _REPLY_TEXT.match(reply):
            raise ValueError(f"not an SMTP reply: {reply!r}")
        reply = Reply.from_string(reply)
    return Reply.parse(reply.code, "\n".join(line[4:].strip() for line in reply.lines()))


def where_of(host: str, ip: str, port: int) -> str:
    return f"{host} ({ip}:{port})" if host != ip else f"{ip}:{port}"


def unstuff(wire: bytes) -> bytes:
    """What an RFC 5321 server keeps of DATA: the lines up to the lone dot, less one leading dot each."""
    lines: list[bytes] = []
    start = 0
    while True:
        end = wire.find(b"\r\n", start)
        if end < 0:
            raise AssertionError(f"DATA without its terminating <CRLF>.<CRLF>: {wire[-40:]!r}")
        line, start = wire[start:end + 2], end + 2
        if line == b".\r\n":
            break
        lines.append(line[1:] if line.startswith(b".") else line)
    if start != len(wire):
        raise AssertionError(f"bytes after the end of DATA: {wire[start:start + 40]!r}")
    return b"".join(lines)


@dataclass(slots=True)
class Delivered:
    """One message a peer accepted (its DATA got a 2xx)."""

    ip: str
    port: int
    helo: str
    sender: str
    recipients: list[str]      # the ones whose RCPT was accepted, in order
    body: bytes                # as received: un-stuffed, CRLF-terminated
    options: list[str]         # MAIL parameters: SIZE=n, BODY=8BITMIME, SMTPUTF8
    tls_version: str | None = None


@dataclass(eq=False)
class FakeEndpoint:
    """The scripted behaviour of one (ip, port), and what it saw (see the module docstring)."""

    ip: str
    port: int = 25
    refuse: bool = False
    greeting: ScriptedReply = "220 fake.nexthop.test ESMTP"
    mail: ScriptedReply = "250 2.1.0 Sender OK"
    rcpt: dict[str, ScriptedReply] = field(default_factory=dict)
    rcpt_default: ScriptedReply = "250 2.1.5 Recipient OK"
    data_start: ScriptedReply = "354 End data with <CR><LF>.<CR><LF>"
    data: ScriptedReply = "250 2.0.0 OK queued"
    disconnect: Disconnect | None = None
    size: int | None = 0
    smtputf8: bool = True
    eight_bit_mime: bool = True
    pipelining: bool = True
    starttls: bool = False
    implicit_tls: bool = False
    certificate: dict[str, Any] = field(default_factory=dict)
    credentials: dict[str, str] | None = None
    auth_mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN")
    # --- what it saw ---
    connections: int = 0
    helos: list[str] = field(default_factory=list)
    mails: list[str] = field(default_factory=list)
    rcpts: list[str] = field(default_factory=list)
    delivered: list[Delivered] = field(default_factory=list)

    def rcpt_reply(self, address: str) -> Reply:
        wanted = address.lower()
        for scripted, reply in self.rcpt.items():
            if scripted.lower() == wanted:
                return as_received(reply)
        return as_received(self.rcpt_default)

    def extensions(self, over_tls: bool) -> dict[str, str]:
        """The EHLO keywords it advertises, as ClientConnection keeps them (lower case -> parameters)."""
        ext: dict[str, str] = {}
        if self.size is not None:
            ext["size"] = str(self.size) if self.size > 0 else ""
        if self.eight_bit_mime:
            ext["8bitmime"] = ""
        if self.smtputf8:
            ext["smtputf8"] = ""
        if self.pipelining:
            ext["pipelining"] = ""
        if self.starttls and not over_tls and not self.implicit_tls:
            ext["starttls"] = ""
        if self.credentials is not None:
            ext["auth"] = " ".join(self.auth_mechanisms)
        return ext


