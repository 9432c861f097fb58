"""The SMTP client session towards one next-hop endpoint, on asyncio streams.

``ClientConnection.open`` connects (implicit TLS when planned), reads the greeting,
says EHLO (HELO when forced or when EHLO is refused), negotiates STARTTLS as the
``TlsPlan`` demands and authenticates as the ``AuthPlan`` says.  ``send`` runs one
transaction and returns a ``Reply`` per recipient; with PIPELINING (RFC 2920) MAIL,
every RCPT and DATA leave in one write, so a message costs two round trips.  A next hop
that offers CHUNKING (RFC 3030) gets the body in BDAT chunks instead, as stored (no
dot-stuffing): ``BDAT n LAST`` for a body in memory, a chunk per stored part for a large one;
DSN parameters (RFC 3461) go on MAIL and RCPT when it offers DSN.

Why not aiosmtplib (which this module used first): its protocol reads exactly one
reply per command written (documented in ``SMTPProtocol.read_response``), so it
cannot pipeline, and under load its per-command machinery (a lock, ``wait_for``)
showed in profiles of ``make bench``.  The session logic here is small.

Every socket, ssl and protocol error is translated here into a ``ConnectionFailure``
(the endpoint could not be used: try the next one; always 4xx) or a per-recipient
``Reply`` (worded in ``smtp.failures``); nothing above this module sees a library
exception.  Classification (rule 2): 2xx delivered, 4xx, timeouts and unknown errors
temporary, 5xx permanent.  What it writes in DATA is in ``smtp.outgoing``.
"""

from __future__ import annotations

import _ssl
import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field

from mailhop.errors import ConnectionFailure, LineTooLong, MailhopError, ProtocolError
from mailhop.outcome import Reply
from mailhop.smtp.client_auth import authenticate
from mailhop.smtp.deadline import ReadTimer
from mailhop.smtp.failures import (
    connection_error_reply,
    ssl_cause,
    tls_error_reply,
    transaction_error_reply,
)
from mailhop.smtp.outgoing import Body, DotStuffer, dot_stuff
from mailhop.smtp.session import (
    AuthPlan,
    DsnRequest,
    TlsPlan,
    Trace,
    Transaction,
    data_refused,
    data_result,
    mail_parameters,
    no_verify_context,
    refused_before_mail,
)

MAX_REPLY_LINES = 100
MAX_REPLY_LINE = 8 * 1024   # RFC 5321 says 512; real servers write longer texts
MAX_REPLY = 64 * 1024


@dataclass(slots=True)
class ClientConnection:
    host: str          # name we connected to (for logs and the Received chain)
    ip: str
    port: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    helo_name: str
    command_timeout: float
    messages_sent: int = 0
    tls_version: str | None = None
    tls_cipher: str | None = None
    tls_policy: str | None = None
    extensions: dict[str, str] = field(default_factory=dict)
    trace: Trace | None = None
    authenticated_as: str | None = None
    closed: bool = False
    last_lines: list[str] = field(default_factory=list)
    _timer: ReadTimer = field(default_factory=ReadTimer, init=False, repr=False)

    # --- the wire ---------------------------------------------------------------------

    def _trace(self, event: str, data: str) -> None:
        if self.trace is not None:
            self.trace(event, data)

    def _write(self, *lines: str | bytes, log: bool = True) -> None:
        data = b"".join(line if isinstance(line, bytes) else line.encode("utf-8") for line in lines)
        if log:
            for line in data.decode("utf-8", "replace").splitlines():
                self._trace(">", line)
        self.writer.write(data)

    async def _reply_lines(self) -> list[bytes]:
        """One reply's lines; a line over ``MAX_REPLY_LINE`` bytes, a reply over ``MAX_REPLY_LINES``
        lines or ``MAX_REPLY`` bytes is a ProtocolError (the connection ends, the hop is not
        trusted to be in step any more), never read on as the next replies."""
        lines: list[bytes] = []
        size = 0
        while True:
            try:
                line = await self.reader.readline()
            except ValueError:  # the StreamReader's limit (MAX_REPLY_LINE) was exceeded
                raise LineTooLong(f"a reply line of more than {MAX_REPLY_LINE} bytes") from None
            if not line.endswith(b"\n"):
                raise ProtocolError("the connection was closed")
            if len(line) < 4 or not line[:3].isdigit() or line[3:4] not in (b" ", b"-", b"\r", b"\n"):
                raise ProtocolError(f"not an SMTP reply: {line[:80]!r}")
            lines.append(line)
            size += len(line)
            if line[3:4] != b"-":
                return lines
            if len(lines) >= MAX_REPLY_LINES or size > MAX_REPLY:
                raise ProtocolError(f"a reply of more than {MAX_REPLY_LINES} lines or {MAX_REPLY} bytes")

    async def _reply(self, timeout: float | None = None) -> Reply:
        """One (possibly multi-line) reply."""
        lines = await self._timer.run(self._reply_lines(), timeout or self.command_timeout)
        code = int(lines[0][:3])
        self.last_lines = [line[4:].strip().decode("utf-8", "replace") for line in lines]
        text = "\n".join(self.last_lines)
        self._trace("<", f"{code} {text}".replace("\n", " "))
        return Reply.parse(code, text)

    async def _command(self, line: str) -> Reply:
        self._write(line + "\r\n")
        return await self._reply()

    # --- opening ------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"{self.ip}:{self.port}"

    @classmethod
    async def open(
        cls, host: str, ip: str, port: int, helo: str, *, tls: TlsPlan, connect_timeout: float,
        command_timeout: float, force_helo: bool = False, trace: Trace | None = None,
        auth: AuthPlan | None = None,
    ) -> ClientConnection:
        """Connect, EHLO, TLS and AUTH as planned; ConnectionFailure (always 4xx) says why not."""
        if trace is not None:
            trace("+", f"{host} {ip}:{port}")
        stage = "connect"
        conn: ClientConnection | None = None
        try:
            async with asyncio.timeout(connect_timeout):
                reader, writer = await asyncio.open_connection(
                    ip, port, limit=MAX_REPLY_LINE,
                    ssl=(tls.context or no_verify_context()) if tls.implicit else None,
                    server_hostname=(tls.server_hostname or "") if tls.implicit else None,
                )
                conn = cls(host, ip, port, reader, writer, helo, command_timeout, trace=trace)
                greeting = await conn._reply()
            if greeting.code != 220:
                raise ConnectionFailure(Reply(451, "4.4.0", (
                    f"{conn._where} refused the connection: {greeting}")), "connect")
            if tls.implicit:
                conn._note_tls(tls)
            await conn._hello(force_helo)
            if not tls.implicit and tls.starttls and "starttls" in conn.extensions:
                stage = "starttls"
                answer = await conn._command("STARTTLS")
                if answer.code != 220:
                    if tls.required:
                        raise ConnectionFailure(Reply(451, "4.4.0", (
                            f"TLS is required but {conn._where} refused STARTTLS: {answer}")), "starttls")
                else:
                    # Anything after the 220 came before the handshake, so not from the TLS peer:
                    # a man in the middle appending replies (a forged EHLO answer). No await from
                    # this check to start_tls, which stops the transport reading at once.
                    if getattr(reader, "_buffer", None):  # no public API shows what it holds
                        raise ConnectionFailure(Reply(451, "4.4.0", (
                            f"{conn._where} sent data after its 220 to STARTTLS, before the TLS handshake; "
                            "the connection was dropped")), "starttls")
                    await writer.start_tls(tls.context or no_verify_context(), server_hostname=tls.server_hostname,
                                           ssl_handshake_timeout=connect_timeout)
                    conn._note_tls(tls)
                    stage = "after-tls"
                    await conn._hello(force_helo)
            elif tls.required and not tls.implicit:
                raise ConnectionFailure(Reply(451, "4.4.0", (
                    f"TLS is required but {host} ({ip}:{port}) did not offer STARTTLS "
                    "(not supported, or stripped on the way); nothing was sent")), "starttls")
            if auth is not None:
                stage = "auth"
                await authenticate(conn, auth)
        except ConnectionFailure as exc:
            if trace is not None:
                trace("*", f"failed: {exc.reply}")
            if conn is not None:
                conn.abort()
            raise
        except asyncio.CancelledError:
            if conn is not None:
                conn.abort()
            raise
        except (OSError, TimeoutError, ssl.SSLError, ProtocolError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError, ValueError) as exc:
            if conn is not None:
                conn.abort()
            tls_failed = stage == "starttls" or (tls.implicit and ssl_cause(exc) is not None)
            reply = (tls_error_reply if tls_failed else connection_error_reply)(exc, host, ip, port)
            if stage == "after-tls" and isinstance(exc, ProtocolError | ConnectionError):
                reply = Reply(451, "4.4.0", (
                    f"{host} ({ip}:{port}) closed the connection right after the TLS handshake: it may require "
                    "a client certificate (TlsCertificateName) or refuse the one presented"))
            if trace is not None:
                trace("*", f"failed: {reply}")
                trace("-", "")
            raise ConnectionFailure(reply, stage) from None
        return conn

    @property
    def _where(self) -> str:
        return f"{self.host} ({self.ip}:{self.port})" if self.host != self.ip else f"{self.ip}:{self.port}"

    async def _hello(self, force_helo: bool) -> None:
        if not force_helo:
            answer = await self._command(f"EHLO {self.helo_name}")
            if answer.code == 250:
                self.extensions = {}
                for line in self.last_lines[1:]:
                    keyword, _, params = line.strip().partition(" ")
                    if keyword:
                        self.extensions[keyword.lower()] = params
                return
        answer = await self._command(f"HELO {self.helo_name}")
        if answer.code != 250:
            reason = answer if answer.temporary else f"HELO refused: {answer}"
            raise ConnectionFailure(Reply(451, "4.4.0", f"{self._where}: {reason}"), "helo")
        self.extensions = {}

    def _note_tls(self, plan: TlsPlan) -> None:
        obj = self.writer.get_extra_info("ssl_object")
        if obj is None:
            return
        self.tls_version = obj.version()
        cipher = obj.cipher()
        self.tls_cipher = cipher[0] if cipher else None
        self._trace("*", f"TLS negotiated: {self.tls_version} {self.tls_cipher}")
        self.tls_policy = plan.policy
        if plan.verify_chain is not None:
            problem = plan.verify_chain(peer_chain(obj))
            if problem:
                raise ConnectionFailure(Reply(451, "4.7.5", f"{self._where}: {problem}"), "starttls")
        if plan.verify_peer is not None:
            problem = plan.verify_peer(obj.getpeercert() or {})
            if problem:
                raise ConnectionFailure(Reply(451, "4.4.0", (
                    f"TLS certificate name mismatch at {self._where}: {problem}")), "starttls")

    # --- transactions ---------------------------------------------------------------------

    def supports(self, extension: str) -> bool:
        return extension.lower() in self.extensions

    @property
    def usable(self) -> bool:
        return not self.closed and not self.writer.is_closing()

    async def send(
        self, sender: str, recipients: list[str], body: Body, *, eight_bit: bool = False, smtputf8: bool = False,
        require_tls: bool = False, dsn: DsnRequest | None = None, binary_mime: bool = False,
    ) -> Transaction:
        """One transaction; never raises for what the peer says or does, nor when a streamed
        body cannot be read (the connection is dropped before the end of DATA: 451 4.3.0)."""
        size = len(body) if isinstance(body, bytes) else body.size
        options = mail_parameters(sender, recipients, size, self.extensions, eight_bit, smtputf8, require_tls,
                                  binary_mime)
        if isinstance(options, Reply):
            return refused_before_mail(options, recipients)
        passed = dsn if dsn is not None and self.supports("dsn") else DsnRequest(None, {})
        mail = " ".join([f"MAIL FROM:<{sender}>", *options, *([passed.mail] if passed.mail else [])])
        rcpts = {r: passed.rcpt_line(r) for r in recipients}
        try:
            if self.supports("pipelining"):
                tx = await self._send_pipelined(mail, rcpts, body)
            else:
                tx = await self._send_sequential(mail, rcpts, body)
            tx.dsn_passed = passed is dsn
            return tx
        except asyncio.CancelledError:
            self.abort()  # shutting down mid-transaction: never leave the socket behind
            raise
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

    async def _send_pipelined(self, mail: str, rcpts: dict[str, str], body: Body) -> Transaction:
        recipients = list(rcpts)
        # RFC 3030: with CHUNKING the body goes in BDAT chunks once a recipient is in, so nothing
        # follows the RCPTs; otherwise DATA leaves with them.
        chunking = self.supports("chunking")
        self._write(mail + "\r\n", *(line + "\r\n" for line in rcpts.values()), *(() if chunking else ("DATA\r\n",)))
        mail_reply = await self._reply()
        results = {r: await self._reply() for r in recipients}
        data_start = None if chunking else await self._reply()
        accepted = [r for r, reply in results.items() if reply.ok]
        if not mail_reply.ok:
            await self._after_refusal(data_start)
            return Transaction({r: mail_reply for r in recipients}, failure=mail_reply)
        if not accepted:
            await self._after_refusal(data_start)
            return Transaction(results)
        if data_start is None:
            return await self._send_chunks(results, accepted, body)
        if data_start.code != 354:
            return await self._data_refused(results, accepted, data_start)
        return await self._finish_data(results, accepted, body)

    async def _send_sequential(self, mail: str, rcpts: dict[str, str], body: Body) -> Transaction:
        recipients = list(rcpts)
        mail_reply = await self._command(mail)
        if not mail_reply.ok:
            await self._rset()
            return Transaction({r: mail_reply for r in recipients}, failure=mail_reply)
        results = {r: await self._command(line) for r, line in rcpts.items()}
        accepted = [r for r, reply in results.items() if reply.ok]
        if not accepted:
            await self._rset()
            return Transaction(results)
        if self.supports("chunking"):
            return await self._send_chunks(results, accepted, body)
        data_start = await self._command("DATA")
        if data_start.code != 354:
            return await self._data_refused(results, accepted, data_start)
        return await self._finish_data(results, accepted, body)

    async def _data_refused(self, results: dict[str, Reply], accepted: list[str], data_start: Reply) -> Transaction:
        failure = data_refused(data_start)
        if failure is data_start:
            await self._rset()  # the peer still holds MAIL and RCPT: the next transaction must not nest
        else:  # a positive answer to DATA: the peer is out of step, its state unknown
            self._trace("*", f"failed: {failure}")
            self.abort()
        return Transaction({**results, **{r: failure for r in accepted}}, failure=failure)

    async def _finish_data(self, results: dict[str, Reply], accepted: list[str], body: Body) -> Transaction:
        if isinstance(body, bytes):
            self._trace(">", f"<message of {len(body)} bytes>")
            self.writer.write(dot_stuff(body))
        else:
            self._trace(">", f"<message of {body.size} bytes>")
            stuffer = DotStuffer()
            async for chunk in body.chunks():
                self.writer.write(stuffer.feed(chunk))
                await self.writer.drain()
            self.writer.write(stuffer.end())
        return await self._end_of_message(results, accepted)

    async def _end_of_message(self, results: dict[str, Reply], accepted: list[str]) -> Transaction:
        """The reply to the end of the body (DATA's dot, or BDAT LAST) decides the accepted recipients."""
        await self.writer.drain()
        answer = await self._reply()
        data_reply = data_result(answer)
        if data_reply is not answer:  # a 3xx to the end of the message: the peer is out of step
            self._trace("*", f"failed: {data_reply}")
            self.abort()
        for rcpt in accepted:
            results[rcpt] = data_reply
        self.messages_sent += 1
        return Transaction(results, failure=None if data_reply.ok else data_reply, data_reply=data_reply)

    async def _send_chunks(self, results: dict[str, Reply], accepted: list[str], body: Body) -> Transaction:
        """The body in BDAT chunks (RFC 3030), as stored: no dot-stuffing.  A bytes body is one
        ``BDAT n LAST``; a stored one goes a part per chunk, then ``BDAT 0 LAST``.  A chunk the
        peer refuses ends the transaction with that reply."""
        if isinstance(body, bytes):
            self._trace(">", f"BDAT {len(body)} LAST <message of {len(body)} bytes>")
            self.writer.write(f"BDAT {len(body)} LAST\r\n".encode() + body)
        else:
            self._trace(">", f"<message of {body.size} bytes in BDAT chunks>")
            async for part in body.chunks():
                if not part:
                    continue
                self.writer.write(f"BDAT {len(part)}\r\n".encode() + part)
                answer = await self._reply()
                if not answer.ok:
                    for rcpt in accepted:
                        results[rcpt] = answer
                    await self._rset()
                    return Transaction(results, failure=answer, data_reply=answer)
            self.writer.write(b"BDAT 0 LAST\r\n")
        return await self._end_of_message(results, accepted)

    async def _after_refusal(self, data_start: Reply | None) -> None:
        """MAIL or every RCPT was refused (DATA, when sent, pipelined behind them): leave a clean state."""
        if data_start is not None and data_start.code == 354:  # a server that accepted DATA anyway gets an empty message it must refuse
            self._write(".\r\n")
            await self._reply()
        await self._rset()

    async def _rset(self) -> None:
        try:
            await self._command("RSET")
        except (OSError, TimeoutError, ssl.SSLError, ProtocolError):
            self.abort()

    # --- closing ----------------------------------------------------------------------------

    def abort(self) -> None:
        self._timer.close()
        if not self.closed:
            self.closed = True
            self.writer.close()

    async def close(self) -> None:
        if not self.closed:
            try:
                self._write("QUIT\r\n")
                await self._reply(timeout=5)
            except (OSError, TimeoutError, ssl.SSLError, ProtocolError):
                pass
            finally:
                self.abort()
            self._trace("-", "")
        await self.wait_closed()

    async def wait_closed(self) -> None:
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
            async with asyncio.timeout(5):
                await self.writer.wait_closed()


def peer_chain(obj: ssl.SSLObject) -> list[bytes]:
    """The certificates the peer sent, DER, leaf first, whether or not they were verified
    (DANE authenticates them itself).  Python 3.13 has ``get_unverified_chain``; 3.10 to
    3.12 have the same call, private, on the object ``SSLObject`` wraps."""
    getter = getattr(obj, "get_unverified_chain", None)
    if getter is None:
        getter = getattr(getattr(obj, "_sslobj", None), "get_unverified_chain", None)
    if getter is None:
        leaf = obj.getpeercert(binary_form=True)
        return [leaf] if leaf else []
    return [c if isinstance(c, bytes) else c.public_bytes(_ssl.ENCODING_DER) for c in (getter() or [])]
