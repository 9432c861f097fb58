"""A scripted in-memory SMTP next hop: ``FakeNextHop.open`` in place of ``ClientConnection.open``.

It passes the same contract suite as ``ClientConnection`` against an aiosmtpd server on
loopback (tests/contract/test_smtp_client.py), so delivery code that takes an ``Opener``
can be tested without sockets and sees the ``Transaction`` and ``ConnectionFailure``
the real client would give it::

    hop = FakeNextHop()
    hop.add(FakeEndpoint("192.0.2.10", 25,
                         rcpt={"gone@fabrikam.test": "550 5.1.1 User unknown"},
                         data="250 2.0.0 Queued as 4711"))
    hop.refuse("192.0.2.11", 25)                 # nothing listens there
    pool = DeliveryPool(..., opener=hop.open)
    ...
    assert [d.recipients for d in hop.delivered] == [["ok@fabrikam.test"]]

Every endpoint is an ``(ip, port)``; one that was never added refuses connections, like
an address where nothing listens.  ``endpoint(ip, port)`` returns (adding it when
missing) the ``FakeEndpoint``, whose fields may be changed between sessions or
messages.  Its behaviour:

``refuse``
    the connection is refused: ``ConnectionFailure(441 4.4.1 "Failed to connect to
    <where>: connection refused", "connect")``, ``<where>`` being ``ip:port``, or
    ``host (ip:port)`` when the host name is not the IP.
``greeting``
    anything but 220 fails the connection: 451 4.4.0 ``"<where> refused the
    connection: <greeting>"``.
``mail``, ``rcpt`` (address -> reply, the address compared case-insensitively),
``rcpt_default``, ``data_start``, ``data``
    the replies to MAIL, to each RCPT, to the DATA command (354 unless it refuses) and
    at the end of DATA.  Replies are ``Reply`` objects or their text (``"550 5.1.1
    User unknown"``); either is handed to the session as the client would parse it
    off the wire.
``disconnect``
    ``"mail"``, ``"rcpt"`` or ``"data"`` (after the message's last line): the peer
    closes the connection there instead of answering.
``size``
    the SIZE the peer advertises (RFC 1870): ``None`` none, ``0`` no fixed limit.  A
    message that turns out bigger than the limit at the end of DATA (a ``BodyStream``
    whose ``size`` was low) is refused 552 5.3.4 by the peer.
``smtputf8``, ``eight_bit_mime``, ``pipelining``
    the extensions advertised (all on by default).
``starttls``, ``implicit_tls``, ``certificate``
    STARTTLS offered; TLS from the first byte (port 465); the peer certificate given to
    ``TlsPlan.verify_peer``.
``credentials``
    ``{username: secret}`` accepted by AUTH (``auth_mechanisms`` advertised, PLAIN
    and LOGIN by default); ``None``: AUTH is not advertised.

What the sessions answer is what ``ClientConnection`` answers, with the same
``Reply`` texts (the same code makes them where it can: ``dot_stuff``, ``DotStuffer``,
``transaction_error_reply``):

* the advertised SIZE is checked first: 550 5.3.4 ``SMTPSEND.OverAdvertisedSize``
  for every recipient, ``failure`` set, nothing sent; then SMTPUTF8 (asked for, or a
  non-ASCII address) without support: 550 5.6.7 ``SMTPSEND.Utf8``, nothing sent;
* MAIL refused: its reply for every recipient and as ``failure``; the session stays
  usable (the client says RSET);
* per-recipient RCPT replies; no recipient accepted: no DATA, ``failure`` None;
* the DATA command refused: its reply for every accepted recipient and as ``failure``;
  the session is reset (the client says RSET) and carries the next message;
* the DATA reply for every accepted recipient, as ``data_reply``, and as ``failure``
  when it is not 2xx; ``messages_sent`` counts every message whose DATA was answered;
* the peer gone (``disconnect``, ``FakeSession.drop``, or a send on a closed
  session): 451 4.4.0 ``SMTPSEND.SuspiciousRemoteServerError; remote server
  disconnected abruptly`` for every recipient (those refused at RCPT too) and as
  ``failure``; the session is then closed;
* a ``BodyStream`` whose ``chunks()`` raise a ``MailhopError``: 451 4.3.0 ``the message
  could not be read from the queue: ...``, and the session is closed, as the client
  drops the connection rather than end DATA on part of a message.

What it records: ``FakeNextHop.attempts`` every ``(ip, port)`` opened, refused ones
too; ``sessions`` every session that opened (``open_sessions``: those not closed);
``delivered`` (and each endpoint's ``delivered``) a ``Delivered`` per message whose DATA
got a 2xx: sender, the accepted recipients, the MAIL parameters, and the body as the
peer received it (dot-stuffed by the client's code and un-stuffed as an RFC 5321
server does, so a body without a final CRLF arrives with one).  Each endpoint counts ``connections`` (every connection it
accepted, even one that failed later at TLS or AUTH) and lists the ``helos`` and the
``mails`` and ``rcpts`` commands it received.

Where it differs from ``ClientConnection`` on a socket: there are no timeouts (the
timeouts given to ``open`` are ignored, and a peer never stalls); TLS is pretended
(``TLSv1.3``, no certificate is checked, the plan's context and server name are
ignored); a plan for implicit TLS to a peer that speaks SMTP first fails as the real
handshake does, but the reverse fails at once with the "timed out" reply the real
client gives after its connect timeout; the trace sees the session's start (``+``),
TLS and failures (``*``), the masked AUTH line and the end (``-``), not the other
command lines.  Each call (``open``, ``send``, ``close``) yields to the event loop once.
``FakeSession.drop`` has the peer close a session: over TLS it is no longer ``usable``;
in clear text it still is, as with ClientConnection, until a send finds the peer gone.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass, field
from typing import Any, Literal

from mailhop.errors import ConnectionFailure, MailhopError, ProtocolError
from mailhop.outcome import Reply
from mailhop.smtp.client import AuthPlan, NextHopSession, Opener, TlsPlan, Trace, Transaction
from mailhop.smtp.failures import transaction_error_reply
from mailhop.smtp.outgoing import Body, DotStuffer, dot_stuff

__all__ = ["Delivered", "FakeEndpoint", "FakeNextHop", "FakeSession", "ScriptedReply", "as_received"]

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


def _where(host: str, ip: str, port: int) -> str:
    return f"{host} ({ip}:{port})" if host != ip else f"{ip}:{port}"


def _unstuff(wire: bytes) -> bytes:
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


class FakeNextHop:
    """The endpoints of a scripted next hop, and an ``open`` that is an ``Opener``."""

    def __init__(self, *endpoints: FakeEndpoint) -> None:
        self.endpoints: dict[tuple[str, int], FakeEndpoint] = {}
        self.attempts: list[tuple[str, int]] = []
        self.sessions: list[FakeSession] = []
        self.delivered: list[Delivered] = []
        for ep in endpoints:
            self.add(ep)

    def add(self, endpoint: FakeEndpoint) -> FakeEndpoint:
        """Script an endpoint (replacing what was scripted for its ip and port)."""
        self.endpoints[(endpoint.ip, endpoint.port)] = endpoint
        return endpoint

    def endpoint(self, ip: str, port: int = 25) -> FakeEndpoint:
        """The endpoint at ip:port, added with the default behaviour (accept everything) when missing."""
        found = self.endpoints.get((ip, port))
        return found if found is not None else self.add(FakeEndpoint(ip, port))

    def refuse(self, ip: str, port: int = 25) -> FakeEndpoint:
        endpoint = self.endpoint(ip, port)
        endpoint.refuse = True
        return endpoint

    @property
    def connections(self) -> int:
        """Connections accepted, at every endpoint."""
        return sum(ep.connections for ep in self.endpoints.values())

    @property
    def open_sessions(self) -> list[FakeSession]:
        return [s for s in self.sessions if not s.closed]

    async def open(
        self, host: str, ip: str, port: int, helo: str, *, tls: TlsPlan, connect_timeout: float,
        command_timeout: float, force_helo: bool = False, trace: Trace | None = None,
        auth: AuthPlan | None = None,
    ) -> FakeSession:
        """``ClientConnection.open`` against the scripted endpoint: ConnectionFailure (4xx) when it cannot."""
        if trace is not None:
            trace("+", f"{host} {ip}:{port}")
        self.attempts.append((ip, port))
        await asyncio.sleep(0)
        where = _where(host, ip, port)
        ep = self.endpoints.get((ip, port))
        if ep is None or ep.refuse or tls.implicit != (ep is not None and ep.implicit_tls):
            if ep is None or ep.refuse:
                reply = Reply(441, "4.4.1", f"Failed to connect to {where}: connection refused")
            elif tls.implicit:  # a ClientHello to a peer that speaks SMTP first
                ep.connections += 1
                reply = Reply(451, "4.4.0", f"TLS negotiation with {where} failed: WRONG_VERSION_NUMBER")
            else:  # the peer waits for a ClientHello: the greeting never comes
                ep.connections += 1
                reply = Reply(441, "4.4.1", f"Connection timed out connecting to {where}")
            if trace is not None:
                trace("*", f"failed: {reply}")
                trace("-", "")
            raise ConnectionFailure(reply, "connect")
        ep.connections += 1
        session = FakeSession(self, ep, host, ip, port, helo, trace=trace)
        try:
            session._open(tls, force_helo, auth)
        except ConnectionFailure as exc:
            if trace is not None:
                trace("*", f"failed: {exc.reply}")
            session.abort()
            raise
        self.sessions.append(session)
        return session


@dataclass(eq=False)
class FakeSession:
    """A session with a ``FakeEndpoint``; a ``NextHopSession`` as ``ClientConnection`` is one."""

    hop: FakeNextHop
    endpoint: FakeEndpoint
    host: str
    ip: str
    port: int
    helo_name: str
    trace: Trace | None = None
    messages_sent: int = 0
    tls_version: str | None = None
    tls_cipher: str | None = None
    extensions: dict[str, str] = field(default_factory=dict)
    authenticated_as: str | None = None
    closed: bool = False
    peer_closed: bool = False

    # --- opening --------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return _where(self.host, self.ip, self.port)

    def _trace(self, event: str, data: str) -> None:
        if self.trace is not None:
            self.trace(event, data)

    def _open(self, tls: TlsPlan, force_helo: bool, auth: AuthPlan | None) -> None:
        greeting = as_received(self.endpoint.greeting)
        if greeting.code != 220:
            raise ConnectionFailure(Reply(451, "4.4.0", f"{self._where} refused the connection: {greeting}"),
                                    "connect")
        if tls.implicit:
            self._tls(tls)
        self._hello(force_helo)
        if not tls.implicit and tls.starttls and self.supports("starttls"):
            self._tls(tls)
            self._hello(force_helo)
        elif tls.required and not tls.implicit:
            raise ConnectionFailure(Reply(451, "4.4.0", (
                f"TLS is required but {self.host} ({self.ip}:{self.port}) did not offer STARTTLS "
                "(not supported, or stripped on the way); nothing was sent")), "starttls")
        if auth is not None:
            self._authenticate(auth)

    def _hello(self, force_helo: bool) -> None:
        self.endpoint.helos.append(self.helo_name)
        self.extensions = {} if force_helo else self.endpoint.extensions(self.tls_version is not None)

    def _tls(self, plan: TlsPlan) -> None:
        self.tls_version, self.tls_cipher = TLS_VERSION, TLS_CIPHER
        self._trace("*", f"TLS negotiated: {self.tls_version} {self.tls_cipher}")
        if plan.verify_peer is not None:
            problem = plan.verify_peer(dict(self.endpoint.certificate))
            if problem:
                raise ConnectionFailure(Reply(451, "4.4.0", (
                    f"TLS certificate name mismatch at {self._where}: {problem}")), "starttls")

    def _authenticate(self, auth: AuthPlan) -> None:
        where = self._where
        if auth.require_tls and self.tls_version is None:
            mechanism_name = "XOAUTH2" if auth.xoauth2 else "BasicAuthRequireTLS"
            raise ConnectionFailure(Reply(451, "4.7.0", (
                f"{mechanism_name}: {where} did not offer TLS, so the credentials were not sent")), "auth")
        offered = self.extensions.get("auth", "").upper().split()
        if auth.xoauth2:
            mechanism = "XOAUTH2" if "XOAUTH2" in offered else None
        else:
            mechanism = next((m for m in ("PLAIN", "LOGIN") if m in offered), None)
        if mechanism is None:
            wanted = "XOAUTH2" if auth.xoauth2 else "PLAIN or LOGIN"
            raise ConnectionFailure(Reply(451, "4.7.0", (
                f"{where} offers no usable AUTH mechanism: wanted {wanted}, offered {' '.join(offered) or 'none'}")),
                "auth")
        self._trace(">", f"AUTH {mechanism} ****")
        credentials = self.endpoint.credentials or {}
        if credentials.get(auth.username) != auth.secret:
            raise ConnectionFailure(Reply(451, "4.7.0", f"AUTH {mechanism} as {auth.username} to {where} "
                                          f"was refused: {AUTH_REFUSED}"), "auth")
        self.authenticated_as = auth.username

    # --- transactions ---------------------------------------------------------------------

    def supports(self, extension: str) -> bool:
        return extension.lower() in self.extensions

    @property
    def usable(self) -> bool:
        # Over TLS the peer's close_notify closes the transport; in clear text a FIN goes
        # unnoticed until a send reads it, as with ClientConnection.
        return not self.closed and not (self.peer_closed and self.tls_version is not None)

    def drop(self) -> None:
        """The peer closes the connection (an idle timeout, a restart): the next send finds out."""
        self.peer_closed = True

    async def send(
        self, sender: str, recipients: list[str], body: Body, *, eight_bit: bool = False, smtputf8: bool = False
    ) -> Transaction:
        """One transaction, answered as ClientConnection answers it; never raises for what the peer does."""
        await asyncio.sleep(0)
        options: list[str] = []
        size = len(body) if isinstance(body, bytes) else body.size
        if self.supports("size"):
            limit = self.extensions.get("size", "").strip()
            if limit.isdigit() and int(limit) > 0 and size > int(limit):
                fail = Reply(550, "5.3.4", "SMTPSEND.OverAdvertisedSize; message size exceeds fixed maximum size")
                return Transaction({r: fail for r in recipients}, failure=fail)
            options.append(f"SIZE={size}")
        if eight_bit and self.supports("8bitmime"):
            options.append("BODY=8BITMIME")
        if smtputf8 or not sender.isascii() or not all(r.isascii() for r in recipients):
            if not self.supports("smtputf8"):
                fail = Reply(550, "5.6.7", "SMTPSEND.Utf8; the remote server does not support SMTPUTF8")
                return Transaction({r: fail for r in recipients}, failure=fail)
            options.append("SMTPUTF8")
        try:
            return await self._transaction(sender, recipients, body, options)
        except (OSError, TimeoutError, ssl.SSLError, ProtocolError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError) as exc:
            self.abort()
            reply = transaction_error_reply(exc)
            self._trace("*", f"failed: {reply}")
            return Transaction({r: reply for r in recipients}, failure=reply)
        except MailhopError as exc:  # the body could not be read: never end DATA on part of it
            self.abort()
            reply = Reply(451, "4.3.0", f"the message could not be read from the queue: {exc}")
            self._trace("*", f"failed: {reply}")
            return Transaction({r: reply for r in recipients}, failure=reply)

    def _peer_gone(self) -> ProtocolError:
        self.peer_closed = True
        return ProtocolError("the connection was closed")

    async def _transaction(self, sender: str, recipients: list[str], body: Body, options: list[str]) -> Transaction:
        ep = self.endpoint
        if self.closed or self.peer_closed:
            raise self._peer_gone()
        ep.mails.append(sender)
        if ep.disconnect == "mail":
            raise self._peer_gone()
        mail_reply = as_received(ep.mail)
        if not mail_reply.ok:
            return Transaction({r: mail_reply for r in recipients}, failure=mail_reply)
        results: dict[str, Reply] = {}
        for rcpt in recipients:
            ep.rcpts.append(rcpt)
            if ep.disconnect == "rcpt":
                raise self._peer_gone()
            results[rcpt] = ep.rcpt_reply(rcpt)
        accepted = [r for r, reply in results.items() if reply.ok]
        if not accepted:
            return Transaction(results)
        data_start = as_received(ep.data_start)
        if data_start.code != 354:  # refused: the client says RSET
            return Transaction({**results, **{r: data_start for r in accepted}}, failure=data_start)
        if isinstance(body, bytes):
            wire = dot_stuff(body)
        else:
            stuffer = DotStuffer()
            pieces = [stuffer.feed(chunk) async for chunk in body.chunks()]
            wire = b"".join([*pieces, stuffer.end()])
        received = _unstuff(wire)
        if ep.disconnect == "data":
            raise self._peer_gone()
        if ep.size and len(wire) - 3 > ep.size:  # the peer counts what it read, stuffing included
            data_reply = as_received(TOO_BIG)
        else:
            data_reply = as_received(ep.data)
        if data_reply.ok:
            record = Delivered(self.ip, self.port, self.helo_name, sender, accepted, received, options,
                               self.tls_version)
            ep.delivered.append(record)
            self.hop.delivered.append(record)
        for rcpt in accepted:
            results[rcpt] = data_reply
        self.messages_sent += 1
        return Transaction(results, failure=None if data_reply.ok else data_reply, data_reply=data_reply)

    # --- closing ----------------------------------------------------------------------------

    def abort(self) -> None:
        self.closed = True

    async def close(self) -> None:
        if not self.closed:
            self.abort()
            self._trace("-", "")
        await asyncio.sleep(0)


def _conforms(s: FakeSession) -> NextHopSession:
    return s


def _opens(hop: FakeNextHop) -> Opener:
    return hop.open
