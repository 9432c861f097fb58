"""The SMTP server protocol state machine (RFC 5321 with ESMTP extensions).

This module is the wire only: it parses commands, enforces syntax, order, line
and size limits, speaks STARTTLS and AUTH, and hands each decision that needs
policy (MAIL, RCPT, DATA, AUTH) to a ``Handler``.  Every reply carries an
enhanced status code.  Advertised: SIZE, PIPELINING, 8BITMIME,
ENHANCEDSTATUSCODES, SMTPUTF8, DSN (RFC 3461: RET and ENVID on MAIL, NOTIFY and ORCPT
on RCPT, checked here, ``501 5.5.4`` when malformed), CHUNKING (RFC 3030 BDAT, the chunks
read whatever the reply), and STARTTLS/AUTH when configured;
REQUIRETLS (RFC 8689) inside TLS only, and ``MAIL FROM:<...> REQUIRETLS`` only there.

Why not aiosmtpd: measured against what mailhop must do, aiosmtpd 1.4 neither
advertises PIPELINING nor ENHANCEDSTATUSCODES, and several of its fixed replies
carry no enhanced code ("503 Error: need MAIL command", "500 Line too long");
this state machine is small, and owning it also lets us batch pipelined replies
into one write.

Failure behaviour: a peer that misbehaves gets a 5xx and, after too many errors
or on idle timeout, a 421 and a closed connection; a handler exception becomes
``451 4.3.0`` for that command, never a dropped session with mail half-accepted.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import ipaddress
import itertools
import logging
import re
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from mailhop.clock import SYSTEM_CLOCK, Clock
from mailhop.errors import LineTooLong
from mailhop.model import dsn_params
from mailhop.outcome import Reply
from mailhop.smtp.address import parse_params, parse_path
from mailhop.smtp.replies import SHUTTING_DOWN
from mailhop.smtp.stream import MAX_COMMAND_LINE, Input, LineEnds

log = logging.getLogger(__name__)

MAX_ERRORS = 10
# RFC 5321 4.5.3.1.4: 512 octets a command line; MAIL and RCPT may carry ESMTP parameters
# (RFC 1869, SMTPUTF8 addresses), AUTH an initial response of up to 12288 (RFC 4954 4).
MAX_LINE = 512
LINE_LIMITS = {"MAIL": 1024, "RCPT": 1024, "AUTH": MAX_COMMAND_LINE}
# C0 controls but TAB, DEL and C1 controls: never in a command (bare CR is the smuggler's tool).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
OUT_CAP = 64 * 1024  # replies held back for pipelining, at most
TOO_MANY = Reply(421, "4.3.2", "Too many connections, try again later")
TOO_MANY_FROM_YOU = Reply(421, "4.3.2", "Too many connections from your address, try again later")
_session_ids = itertools.count(1)


@dataclass(slots=True)
class TlsInfo:
    version: str
    cipher: str
    bits: int | None = None


@dataclass(slots=True)
class Session:
    peer_ip: str
    peer_port: int
    local_ip: str
    local_port: int
    session_id: str = field(default_factory=lambda: f"{next(_session_ids):08X}")
    helo: str | None = None
    esmtp: bool = False
    tls: TlsInfo | None = None
    auth_user: str | None = None
    envelope: Envelope | None = None  # the mail transaction under way
    # Not SMTP: "HTTP" (POST /api/messages) or "PICKUP" (mailhop sendmail), the tracking log's Source.
    via: str | None = None

    @property
    def protocol(self) -> str:
        """The ``with`` word of a Received: header (RFC 3848; "local" for sendmail, as Postfix writes)."""
        if self.via:
            return "local" if self.via == "PICKUP" else self.via
        if not self.esmtp:
            return "SMTP"
        return "ESMTP" + ("S" if self.tls else "") + ("A" if self.auth_user else "")

    def reset(self) -> None:
        if self.envelope is not None and self.envelope.bdat is not None:
            self.envelope.bdat.sink.close()  # a BDAT body cut short: its spool goes
        self.envelope = None


@dataclass(slots=True)
class Chunks:
    """A BDAT body being received (RFC 3030): its sink, and the bytes taken so far."""

    sink: DataSink
    write: LineEnds
    size: int = 0
    too_big: bool = False


@dataclass(slots=True)
class Envelope:
    """One mail transaction: from MAIL to the end of DATA (or RSET)."""

    mail_from: str
    params: dict[str, str | None] = field(default_factory=dict)
    rcpt_to: list[str] = field(default_factory=list)
    rcpt_dsn: list[str | None] = field(default_factory=list)  # each recipient's NOTIFY/ORCPT (dsn_params)
    bdat: Chunks | None = None   # BDAT under way

    @property
    def dsn(self) -> str | None:
        """RET and ENVID as the message keeps them (checked when MAIL was taken)."""
        return dsn_params.mail_params(self.params.get("RET"), self.params.get("ENVID"))

    @property
    def smtputf8(self) -> bool:
        return "SMTPUTF8" in self.params

    @property
    def eight_bit(self) -> bool:
        return (self.params.get("BODY") or "").upper() == "8BITMIME"

    @property
    def require_tls(self) -> bool:
        return "REQUIRETLS" in self.params

    @property
    def binary_mime(self) -> bool:
        return (self.params.get("BODY") or "").upper() == "BINARYMIME"


class DataSink(Protocol):
    """Where a transaction's body goes while it arrives (dot-stuffing removed, CRLF line ends)."""

    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...


class Handler(Protocol):
    """The policy behind the wire; each decision gets the session and its transaction."""

    async def on_connect(self, session: Session) -> Reply | None: ...
    async def on_mail(self, session: Session, envelope: Envelope) -> Reply: ...
    async def on_rcpt(self, session: Session, envelope: Envelope, address: str) -> Reply: ...
    def data_sink(self, session: Session, envelope: Envelope) -> DataSink:
        """A sink for the body about to be sent (called right before ``354``)."""
        ...
    async def on_data(self, session: Session, envelope: Envelope, sink: DataSink) -> Reply:
        """The whole body is in ``sink``: accept it (250 after the commit) or refuse it."""
        ...
    async def on_auth(self, session: Session, user: str, password: str) -> Reply: ...


@dataclass(frozen=True, slots=True)
class ServerOptions:
    hostname: str
    max_message_size: int | None = None
    max_recipients: int = 5000
    idle_timeout: float = 300.0
    session_timeout: float = 600.0
    data_timeout: float = 600.0
    tls_context: ssl.SSLContext | None = None
    require_tls: bool = False
    # AUTH PLAIN/LOGIN offered when a handler can verify users; only over TLS unless allowed.
    auth_enabled: bool = False
    auth_requires_tls: bool = True
    binary_mime: bool = False      # offer BINARYMIME (with CHUNKING)
    max_connections: int = 5000
    max_connections_per_source: int = 200
    clock: Clock = SYSTEM_CLOCK


ProtocolLog = Callable[[Session, str, str], None]


class SMTPServer:
    def __init__(self, handler: Handler, options: ServerOptions, protocol_log: ProtocolLog | None = None,
                 accepting: Callable[[], bool] | None = None) -> None:
        self.accepting = accepting  # False while the server is drained: new sessions get 421
        self.handler = handler
        self.options = options
        self.protocol_log = protocol_log
        self._server: asyncio.Server | None = None
        self._sessions: dict[asyncio.Task[None], _Connection] = {}
        self._per_source: dict[str, int] = {}  # sessions open per source address (IPv6: per /64)
        self.closing = False

    async def start(self, host: str, port: int, reuse_port: bool = False) -> None:
        """Listen on ``host:port`` and serve at once (the tests' way; the service binds first)."""
        self._server = await asyncio.start_server(
            self._accept, host, port, limit=MAX_COMMAND_LINE, reuse_address=True, backlog=1024,
            reuse_port=reuse_port,
        )

    async def listen(self, sock: socket.socket) -> None:
        """Take a socket bound already (``listeners.bind``); nothing is accepted before ``serve``."""
        self._server = await asyncio.start_server(self._accept, sock=sock, limit=MAX_COMMAND_LINE,
                                                  start_serving=False)

    async def serve(self) -> None:
        assert self._server is not None
        await self._server.start_serving()

    @property
    def sockets(self) -> list[object]:
        return list(self._server.sockets) if self._server else []

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        drained = self.accepting is not None and not self.accepting()
        source = _source(writer.get_extra_info("peername"))
        refusal = (SHUTTING_DOWN if self.closing or drained
                   else TOO_MANY if len(self._sessions) >= self.options.max_connections
                   else TOO_MANY_FROM_YOU if self._per_source.get(source, 0) >= self.options.max_connections_per_source
                   else None)
        if refusal is not None:
            writer.write(refusal.wire())
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()
            return
        conn = _Connection(self, reader, writer)
        self._sessions[task] = conn
        self._per_source[source] = self._per_source.get(source, 0) + 1
        try:
            await conn.run()
        finally:
            self._sessions.pop(task, None)
            left = self._per_source.pop(source) - 1
            if left:
                self._per_source[source] = left

    async def stop(self, grace: float) -> None:
        """Stop listening; close idle sessions with 421; give busy ones ``grace`` seconds."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        for conn in list(self._sessions.values()):
            if not conn.busy:
                conn.close_now(SHUTTING_DOWN)
        if self._sessions:
            _, pending = await asyncio.wait(list(self._sessions), timeout=grace)
            for task in pending:
                busy = self._sessions.get(task)
                if busy is not None:
                    busy.close_now(SHUTTING_DOWN)
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)


class _Connection:
    def __init__(self, server: SMTPServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.options = server.options
        self.handler = server.handler
        self.reader = reader
        self.writer = writer
        clock = server.options.clock
        self.input = Input(reader, clock, deadline=clock.now() + server.options.session_timeout)
        peer = writer.get_extra_info("peername") or ("", 0)
        local = writer.get_extra_info("sockname") or ("", 0)
        self.session = Session(peer_ip=peer[0], peer_port=peer[1], local_ip=local[0], local_port=local[1])
        self.busy = False
        self.out: list[bytes] = []
        self._out_size = 0
        self.errors = 0
        self.closed = False

    # --- output -----------------------------------------------------------------------

    def _log(self, direction: str, text: str) -> None:
        if self.server.protocol_log is not None:
            self.server.protocol_log(self.session, direction, text)

    def reply(self, reply: Reply) -> None:
        if self.server.protocol_log is not None:
            for line in reply.lines():
                self._log(">", line)
        wire = reply.wire()
        self.out.append(wire)
        self._out_size += len(wire)

    async def flush(self, force: bool = False) -> None:
        # PIPELINING: replies to commands that arrived together leave together, up to
        # OUT_CAP bytes; beyond that they are written, and drain() waits while the client does
        # not read: a client that pipelines and never reads stops the session, not the memory.
        # Held back only while a whole command is waiting; a partial line may wait for our reply.
        if not self.out or (not force and b"\n" in self.input.buf and self._out_size < OUT_CAP):
            return
        self.writer.write(b"".join(self.out))
        self.out.clear()
        self._out_size = 0
        await self.writer.drain()

    def close_now(self, reply: Reply | None) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if reply is not None:
                self._log(">", str(reply))
                self.writer.write(b"".join(self.out) + reply.wire())
            self.writer.close()
        except (ConnectionError, RuntimeError):
            pass

    # --- the session ----------------------------------------------------------------------

    async def run(self) -> None:
        self._log("+", f"{self.session.peer_ip}:{self.session.peer_port}")
        try:
            await self._run()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except TimeoutError:
            if self.input.deadline is not None and self.options.clock.now() >= self.input.deadline:
                self.close_now(Reply(421, "4.3.2", f"{self.options.hostname} Session time limit exceeded, "
                                     "closing connection"))
            else:
                self.close_now(Reply(421, "4.4.2", f"{self.options.hostname} Error: timeout exceeded"))
        finally:
            self._log("-", "disconnected")
            self.session.reset()  # a BDAT body cut short has its spool closed
            if not self.closed:
                self.closed = True
                self.writer.close()
            with contextlib.suppress(Exception):
                await self.input.timer.run(self.writer.wait_closed(), 1)
            self.input.timer.close()

    async def _run(self) -> None:
        self.busy = True
        greeting = await self.handler.on_connect(self.session)
        if greeting is not None and not greeting.ok:
            self.reply(greeting)
            await self.flush(force=True)
            return
        self.reply(Reply(220, "", f"{self.options.hostname} ESMTP mailhop ready"))
        await self.flush(force=True)
        self.busy = False
        while not self.closed:
            try:
                line = await self.input.readline(self.options.idle_timeout)
            except LineTooLong:
                self.reply(Reply(500, "5.5.2", "Line too long"))
                if await self._error():
                    return
                await self.flush()
                continue
            if line is None or self.closed:
                return
            if self.server.closing:
                self.close_now(SHUTTING_DOWN)
                return
            self.busy = True
            try:
                keep_going = await self._command(line)
            finally:
                self.busy = False
            if not keep_going:
                await self.flush(force=True)
                return
            await self.flush()

    async def _error(self) -> bool:
        """Count a protocol error; True when the session must end."""
        self.errors += 1
        if self.errors >= MAX_ERRORS:
            self.reply(Reply(421, "4.7.0", f"{self.options.hostname} Too many errors, closing connection"))
            await self.flush(force=True)
            return True
        return False

    async def _command(self, line: bytes) -> bool:
        text = self._checked(line)
        if text is None:
            return not await self._error()
        self._log("<", _redact(text))
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        if len(line) > LINE_LIMITS.get(verb, MAX_LINE):
            self.reply(Reply(500, "5.5.2", "Line too long"))
            return not await self._error()
        method = getattr(self, f"_smtp_{verb.lower()}", None) if verb.isalpha() else None
        if method is None:
            self.reply(Reply(500, "5.5.2", "Error: command not recognized"))
            return not await self._error()
        try:
            result: bool = await method(arg.strip())
            return result
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError):
            raise
        except Exception:
            log.exception("session %s: handler failed on %s", self.session.session_id, verb)
            self.session.reset()
            self.reply(Reply(451, "4.3.0", "Error: internal error, try again later"))
            return True

    def _checked(self, line: bytes) -> str | None:
        """The command without its CRLF; None (and a 5xx replied) for what is never executed:
        a line not ended by CRLF, invalid UTF-8, a control character (bare CR, NUL, ...)."""
        if not line.endswith(b"\r\n"):
            self.reply(Reply(501, "5.5.2", "Syntax error: line not ended by CRLF (bare LF)"))
            return None
        try:
            text = line[:-2].decode("utf-8")
        except UnicodeDecodeError:
            self.reply(Reply(500, "5.5.2", "Syntax error: command is not valid UTF-8"))
            return None
        if _CONTROL.search(text):
            self.reply(Reply(501, "5.5.2", "Syntax error: control character in command"))
            return None
        return text

    async def _smtp_helo(self, arg: str) -> bool:
        return await self._hello(arg, esmtp=False)

    async def _smtp_ehlo(self, arg: str) -> bool:
        return await self._hello(arg, esmtp=True)

    async def _hello(self, arg: str, esmtp: bool) -> bool:
        if not arg or " " in arg:
            self.reply(Reply(501, "5.5.4", "Syntax: EHLO hostname" if esmtp else "Syntax: HELO hostname"))
            return not await self._error()
        self.session.helo = arg
        self.session.esmtp = esmtp
        self.session.reset()
        if not esmtp:
            self.reply(Reply(250, "", f"{self.options.hostname} Hello [{self.session.peer_ip}]"))
            return True
        lines = [f"{self.options.hostname} Hello [{self.session.peer_ip}]"]
        size = self.options.max_message_size
        lines.append(f"SIZE {size}" if size is not None else "SIZE")
        lines += ["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN", "CHUNKING"]
        if self.options.binary_mime:
            lines.append("BINARYMIME")
        if self.options.tls_context is not None and self.session.tls is None:
            lines.append("STARTTLS")
        if self.session.tls is not None:
            lines.append("REQUIRETLS")
        if self._auth_offered():
            lines.append("AUTH PLAIN LOGIN")
        self.reply(Reply(250, "", "\n".join(lines)))
        return True

    def _auth_offered(self) -> bool:
        return (
            self.options.auth_enabled
            and self.session.auth_user is None
            and (self.session.tls is not None or not self.options.auth_requires_tls)
        )

    async def _smtp_starttls(self, arg: str) -> bool:
        if self.options.tls_context is None:
            self.reply(Reply(502, "5.5.1", "STARTTLS not available"))
            return not await self._error()
        if self.session.tls is not None:
            self.reply(Reply(503, "5.5.1", "TLS already active"))
            return True
        if arg:
            self.reply(Reply(501, "5.5.4", "Syntax: STARTTLS"))
            return True
        # Nothing received before the handshake may be read after it (CVE-2011-0411): what a
        # client sent after STARTTLS in clear text, pipelined with it or while the 220 drains,
        # is discarded, from our buffer and the StreamReader's (no public API empties it).
        self.reply(Reply(220, "2.0.0", "SMTP server ready"))
        await self.flush(force=True)
        discarded = len(self.input.buf)
        self.input.buf.clear()
        pending = getattr(self.reader, "_buffer", None)
        if isinstance(pending, bytearray):
            discarded += len(pending)
            pending.clear()
        if discarded:
            self._log("*", f"{discarded} byte(s) sent after STARTTLS before the TLS handshake: discarded")
        # No await from the clearing to start_tls: the transport stops reading synchronously
        # inside it, so any later byte goes to the TLS layer, never to this reader in clear.
        try:
            await self.writer.start_tls(self.options.tls_context, ssl_handshake_timeout=60)
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            self._log("*", f"TLS negotiation failed: {exc}")
            self.closed = True
            return False
        obj = self.writer.get_extra_info("ssl_object")
        cipher = obj.cipher() if obj else None
        self.session.tls = TlsInfo(
            version=(obj.version() if obj else None) or "TLS",
            cipher=cipher[0] if cipher else "",
            bits=cipher[2] if cipher else None,
        )
        self._log("*", f"TLS negotiated: {self.session.tls.version} {self.session.tls.cipher}")
        # RFC 3207: the session starts over; the client must EHLO again.
        self.session.helo = None
        self.session.esmtp = False
        self.session.reset()
        return True

    async def _smtp_auth(self, arg: str) -> bool:
        if not self._auth_offered():
            if self.options.auth_enabled and self.session.tls is None and self.options.auth_requires_tls:
                self.reply(Reply(538, "5.7.11", "Encryption required for requested authentication mechanism"))
            elif self.session.auth_user is not None:
                self.reply(Reply(503, "5.5.1", "Already authenticated"))
            else:
                self.reply(Reply(502, "5.5.1", "AUTH not available"))
            return not await self._error()
        if self.session.envelope is not None:
            self.reply(Reply(503, "5.5.1", "AUTH not allowed during a mail transaction"))
            return True
        mechanism, _, initial = arg.partition(" ")
        mechanism = mechanism.upper()
        credentials: tuple[str, str] | None
        if mechanism == "PLAIN":
            response = initial.strip() or await self._challenge("")
            if response is None:
                return True
            credentials = _decode_plain(response)
        elif mechanism == "LOGIN":
            user_b64 = initial.strip() or await self._challenge("VXNlcm5hbWU6")
            if user_b64 is None:
                return True
            password_b64 = await self._challenge("UGFzc3dvcmQ6")
            if password_b64 is None:
                return True
            user, password = _b64(user_b64), _b64(password_b64)
            credentials = (user, password) if user is not None and password is not None else None
        else:
            self.reply(Reply(504, "5.5.4", "Unrecognized authentication type"))
            return not await self._error()
        if credentials is None:
            self.reply(Reply(501, "5.5.2", "Cannot decode the AUTH response"))
            return not await self._error()
        result = await self.handler.on_auth(self.session, *credentials)
        if result.ok:
            self.session.auth_user = credentials[0]
        self.reply(result)
        return not (not result.ok and await self._error())

    async def _challenge(self, text: str) -> str | None:
        self.reply(Reply(334, "", text))
        await self.flush(force=True)
        try:
            line = await self.input.readline(self.options.idle_timeout)
        except LineTooLong:
            self.reply(Reply(500, "5.5.2", "Line too long"))
            return None
        if line is None:
            raise ConnectionError("peer closed during AUTH")
        self._log("<", "****")
        checked = self._checked(line)
        if checked is None:
            return None
        answer = checked.strip()
        if answer == "*":
            self.reply(Reply(501, "5.7.0", "Authentication cancelled"))
            return None
        return answer

    async def _smtp_mail(self, arg: str) -> bool:
        s = self.session
        if s.helo is None:
            self.reply(Reply(503, "5.5.1", "Error: send HELO/EHLO first"))
            return not await self._error()
        if self.options.require_tls and s.tls is None:
            self.reply(Reply(530, "5.7.0", "Must issue a STARTTLS command first"))
            return not await self._error()
        if s.envelope is not None:
            self.reply(Reply(503, "5.5.1", "Error: nested MAIL command"))
            return not await self._error()
        if not arg.upper().startswith("FROM:"):
            self.reply(Reply(501, "5.5.4", "Syntax: MAIL FROM:<address>"))
            return not await self._error()
        rest = arg[5:]
        params_guess = parse_params(rest.partition(">")[2]) if ">" in rest else {}
        utf8 = s.esmtp and params_guess is not None and "SMTPUTF8" in params_guess
        parsed = parse_path(rest, utf8)
        if parsed is None:
            self.reply(Reply(501, "5.1.7", "Bad sender address syntax"))
            return not await self._error()
        address, param_text = parsed
        params = parse_params(param_text)
        if params is None or (params and not s.esmtp):
            self.reply(Reply(555, "5.5.4", "Unsupported or malformed MAIL parameters"))
            return not await self._error()
        for key, value in params.items():
            if key == "SIZE":
                if value is None or not value.isdigit():
                    self.reply(Reply(501, "5.5.4", "Bad SIZE parameter"))
                    return True
                limit = self.options.max_message_size
                if limit is not None and int(value) > limit:
                    self.reply(Reply(552, "5.3.4", "Message size exceeds fixed maximum message size"))
                    return True
            elif key == "BODY":
                body_types = ("7BIT", "8BITMIME", "BINARYMIME") if self.options.binary_mime else ("7BIT", "8BITMIME")
                if (value or "").upper() not in body_types:
                    self.reply(Reply(501, "5.5.4", "Unsupported BODY parameter"))
                    return True
            elif key == "SMTPUTF8":
                if value is not None:
                    self.reply(Reply(501, "5.5.4", "SMTPUTF8 takes no value"))
                    return True
            elif key == "REQUIRETLS":
                if s.tls is None:  # RFC 8689 section 4.1: only offered, so only taken, inside TLS
                    self.reply(Reply(530, "5.7.10", "REQUIRETLS needs a TLS session: issue STARTTLS first"))
                    return True
                if value is not None:
                    self.reply(Reply(501, "5.5.4", "REQUIRETLS takes no value"))
                    return True
            elif key in ("RET", "ENVID"):
                try:
                    if value is None:
                        raise ValueError(f"{key} needs a value")
                    dsn_params.mail_params(**{key.lower(): value})
                except ValueError as exc:
                    self.reply(Reply(501, "5.5.4", f"Bad DSN parameter: {exc}"))
                    return True
            elif key == "AUTH":
                pass  # RFC 4954 AUTH= is accepted and ignored
            else:
                self.reply(Reply(555, "5.5.4", f"Unsupported MAIL parameter {key}"))
                return True
        envelope = Envelope(address, params)
        result = await self.handler.on_mail(s, envelope)
        if result.ok:
            s.envelope = envelope
        self.reply(result)
        return True

    async def _smtp_rcpt(self, arg: str) -> bool:
        s = self.session
        envelope = s.envelope
        if envelope is None:
            self.reply(Reply(503, "5.5.1", "Error: need MAIL command"))
            return not await self._error()
        if not arg.upper().startswith("TO:"):
            self.reply(Reply(501, "5.5.4", "Syntax: RCPT TO:<address>"))
            return not await self._error()
        parsed = parse_path(arg[3:], envelope.smtputf8)
        if parsed is None or not parsed[0]:
            self.reply(Reply(501, "5.1.3", "Bad recipient address syntax"))
            return not await self._error()
        address, param_text = parsed
        rcpt = parse_params(param_text) if param_text.strip() else {}
        if rcpt is None or set(rcpt) - {"NOTIFY", "ORCPT"}:
            self.reply(Reply(555, "5.5.4", "Unsupported RCPT parameters"))
            return True
        try:
            if any(v is None for v in rcpt.values()):
                raise ValueError(f"{', '.join(k for k, v in rcpt.items() if v is None)} needs a value")
            dsn = dsn_params.rcpt_params(rcpt.get("NOTIFY"), rcpt.get("ORCPT"))
        except ValueError as exc:
            self.reply(Reply(501, "5.5.4", f"Bad DSN parameter: {exc}"))
            return True
        if len(envelope.rcpt_to) >= self.options.max_recipients:
            self.reply(Reply(452, "4.5.3", "Too many recipients"))
            return True
        result = await self.handler.on_rcpt(s, envelope, address)
        if result.ok:
            envelope.rcpt_to.append(address)
            envelope.rcpt_dsn.append(dsn)
        self.reply(result)
        return True

    async def _smtp_data(self, arg: str) -> bool:
        s = self.session
        envelope = s.envelope
        if envelope is None:
            self.reply(Reply(503, "5.5.1", "Error: need MAIL command"))
            return not await self._error()
        if not envelope.rcpt_to:
            self.reply(Reply(554, "5.5.1", "Error: no valid recipients"))
            return True
        if arg:
            self.reply(Reply(501, "5.5.4", "Syntax: DATA"))
            return True
        if envelope.bdat is not None:
            self.reply(Reply(503, "5.5.1", "Error: DATA after BDAT in one transaction"))
            return True
        if envelope.binary_mime:  # RFC 3030 3: a binary body comes in BDAT chunks only
            self.reply(Reply(503, "5.5.1", "Error: BODY=BINARYMIME needs BDAT, not DATA"))
            return True
        sink = self.handler.data_sink(s, envelope)
        try:
            self.reply(Reply(354, "", "Start mail input; end with <CRLF>.<CRLF>"))
            await self.flush(force=True)
            result = await self.input.read_data(sink.write, self.options.max_message_size,
                                                self.options.data_timeout)
            if result is None:
                raise ConnectionError("peer closed during DATA")
            self._log("<", f"<message of {result.size} bytes>")
            s.reset()
            if result.too_big:
                self.reply(Reply(552, "5.3.4", "Message size exceeds fixed maximum message size"))
            else:
                self.reply(await self.handler.on_data(s, envelope, sink))
        finally:
            sink.close()
        return True

    async def _smtp_bdat(self, arg: str) -> bool:
        """RFC 3030: ``BDAT <size> [LAST]``; the chunk is read whatever the reply, so the
        session stays in step, and a size that cannot be read ends the session (421)."""
        m = re.fullmatch(r"(\d{1,12})(?: +(LAST))?", arg, re.I)
        if m is None:
            # 421, as for every reply that ends a session (RFC 5321 3.8): nothing after this line
            # can be read in step any more.
            self.close_now(Reply(421, "4.5.4", f"{self.options.hostname} Syntax: BDAT <size> [LAST]; the "
                                               "chunk's end cannot be found, closing connection"))
            return False
        size, last = int(m.group(1)), m.group(2) is not None
        s = self.session
        envelope = s.envelope
        if envelope is None or not envelope.rcpt_to:
            if not await self.input.read_chunk(size, lambda data: None, self.options.data_timeout):
                raise ConnectionError("peer closed during BDAT")
            self.reply(Reply(503, "5.5.1", "Error: need MAIL command") if envelope is None
                       else Reply(554, "5.5.1", "Error: no valid recipients"))
            return not await self._error()
        chunks = envelope.bdat
        if chunks is None:
            sink = self.handler.data_sink(s, envelope)
            # A binary body is taken as it is: its CR and LF are data (it only ever leaves in BDAT
            # chunks, where no line ending can end a message early).
            chunks = envelope.bdat = Chunks(sink, LineEnds(sink.write, binary=envelope.binary_mime))
        limit = self.options.max_message_size
        chunks.size += size
        if limit is not None and chunks.size > limit:
            chunks.too_big = True
        write = (lambda data: None) if chunks.too_big else chunks.write
        if not await self.input.read_chunk(size, write, self.options.data_timeout):
            raise ConnectionError("peer closed during BDAT")
        if not last:
            self.reply(Reply(250, "2.0.0", f"{size} octets received"))
            return True
        chunks.write.close()
        self._log("<", f"<message of {chunks.size} bytes in chunks>")
        envelope.bdat = None
        s.envelope = None
        try:
            if chunks.too_big:
                self.reply(Reply(552, "5.3.4", "Message size exceeds fixed maximum message size"))
            else:
                self.reply(await self.handler.on_data(s, envelope, chunks.sink))
        finally:
            chunks.sink.close()
        return True

    async def _smtp_rset(self, arg: str) -> bool:
        self.session.reset()
        self.reply(Reply(250, "2.0.0", "Resetting"))
        return True

    async def _smtp_noop(self, arg: str) -> bool:
        self.reply(Reply(250, "2.0.0", "OK"))
        return True

    async def _smtp_quit(self, arg: str) -> bool:
        self.reply(Reply(221, "2.0.0", "Service closing transmission channel"))
        return False

    async def _smtp_vrfy(self, arg: str) -> bool:
        self.reply(Reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery"))
        return True

    async def _smtp_help(self, arg: str) -> bool:
        self.reply(Reply(214, "2.0.0", "Commands: HELO EHLO STARTTLS AUTH MAIL RCPT DATA RSET NOOP QUIT VRFY HELP"))
        return True


def _source(peer: object) -> str:
    """Whom the per-source limit counts: the IPv4 address, or the IPv6 /64 (one subscriber's)."""
    host = peer[0] if isinstance(peer, tuple) and peer else ""
    try:
        ip = ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return str(host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else str(ip)


def _redact(text: str) -> str:
    """AUTH secrets never reach a log: keep the mechanism, hide the initial response."""
    words = text.split(" ")
    if words[0].upper() == "AUTH" and len(words) > 2:
        return " ".join(words[:2]) + " ****"
    return text


def _b64(text: str) -> str | None:
    try:
        return base64.b64decode(text, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def _decode_plain(text: str) -> tuple[str, str] | None:
    decoded = _b64(text)
    if decoded is None:
        return None
    parts = decoded.split("\x00")
    if len(parts) != 3 or not parts[1]:
        return None
    return parts[1], parts[2]
