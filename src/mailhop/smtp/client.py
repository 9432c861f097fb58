"""The SMTP client session towards one next-hop endpoint, over aiosmtplib.

``ClientConnection.open`` connects, reads the greeting, says EHLO (HELO when
forced or when EHLO is refused) and negotiates STARTTLS as the ``TlsPlan``
demands.  ``send`` runs one transaction and returns a ``Reply`` per recipient.
Every aiosmtplib, ssl and socket exception is translated here into a
``ConnectionFailure`` (the endpoint could not be used: try the next one) or a
per-recipient ``Reply``; nothing above this module sees a library exception.
Classification (rule 2): 2xx delivered, 4xx, timeouts and unknown errors
temporary, 5xx permanent.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiosmtplib
from aiosmtplib import SMTPResponse

from mailhop.smtp.replies import Reply

Trace = Callable[[str, str], None]  # (event, data): Exchange's protocol log event characters


class ConnectionFailure(Exception):
    """The endpoint could not carry a transaction; ``reply`` says why (always 4xx)."""

    def __init__(self, reply: Reply, stage: str) -> None:
        super().__init__(str(reply))
        self.reply = reply
        self.stage = stage


@dataclass(frozen=True, slots=True)
class TlsPlan:
    """What to do about TLS on this connection (decided by delivery, not here)."""

    starttls: bool = True          # use STARTTLS when offered
    required: bool = False         # fail rather than send in clear text
    context: ssl.SSLContext | None = None
    server_hostname: str | None = None
    implicit: bool = False         # TLS from the first byte (port 465)
    # Called with the verified peer certificate; returns why it is refused, or None.
    verify_peer: Callable[[dict[str, Any]], str | None] | None = None


@dataclass(frozen=True, slots=True)
class AuthPlan:
    """Credentials for the next hop; the secret is never logged."""

    username: str
    secret: str
    xoauth2: bool = False
    require_tls: bool = False      # BasicAuthRequireTLS: no credentials in clear text


@dataclass(slots=True)
class Transaction:
    """The outcome of one MAIL/RCPT/DATA transaction."""

    recipients: dict[str, Reply]
    # Whole-transaction failure (MAIL or DATA refused, connection lost): retry elsewhere if temporary.
    failure: Reply | None = None
    data_reply: Reply | None = None


def _no_verify_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass(slots=True)
class ClientConnection:
    host: str          # name we connected to (for logs and the Received chain)
    ip: str
    port: int
    smtp: aiosmtplib.SMTP
    messages_sent: int = 0
    tls_version: str | None = None
    tls_cipher: str | None = None
    extensions: dict[str, str] = field(default_factory=dict)
    trace: Trace | None = None
    authenticated_as: str | None = None

    def _trace(self, event: str, data: str) -> None:
        if self.trace is not None:
            self.trace(event, data)

    async def _command(self, verb: bytes, *args: bytes) -> SMTPResponse:
        self._trace(">", b" ".join((verb, *args)).decode("utf-8", "replace"))
        response = await self.smtp.execute_command(verb, *args)
        self._trace("<", f"{response.code} {response.message}".replace("\n", " "))
        return response

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
        smtp = aiosmtplib.SMTP(
            hostname=ip, port=port, local_hostname=helo, timeout=command_timeout,
            use_tls=tls.implicit, start_tls=False, validate_certs=False,
            tls_context=(tls.context or _no_verify_context()) if tls.implicit else None,
        )
        conn = cls(host=host, ip=ip, port=port, smtp=smtp, trace=trace)
        stage = "connect"
        try:
            conn._trace("+", f"{host} {ip}:{port}")
            greeting = await smtp.connect(timeout=connect_timeout)
            conn._trace("<", f"{greeting.code} {greeting.message}")
            if tls.implicit:
                conn._note_tls(tls)
            await conn._hello(force_helo)
            if not tls.implicit and tls.starttls and smtp.supports_extension("starttls"):
                stage = "starttls"
                conn._trace(">", "STARTTLS")
                await smtp.starttls(tls_context=tls.context or _no_verify_context(),
                                    server_hostname=tls.server_hostname)
                conn._note_tls(tls)
                stage = "after-tls"
                await conn._hello(force_helo)
            elif tls.required and not tls.implicit:
                raise ConnectionFailure(Reply(451, "4.4.0", (
                    f"TLS is required but {host} ({ip}:{port}) did not offer STARTTLS "
                    "(not supported, or stripped on the way); nothing was sent")), "starttls")
            if auth is not None:
                stage = "auth"
                await conn._authenticate(auth)
        except ConnectionFailure as exc:
            conn._trace("*", f"failed: {exc.reply}")
            smtp.close()
            conn._trace("-", "")
            raise
        except BaseException as exc:
            smtp.close()
            if isinstance(exc, asyncio.CancelledError):
                raise
            tls_failed = stage == "starttls" or (tls.implicit and _ssl_cause(exc) is not None)
            reply = (tls_error_reply if tls_failed else connection_error_reply)(exc, host, ip, port)
            if stage == "after-tls" and isinstance(exc, ConnectionError | aiosmtplib.SMTPServerDisconnected):
                reply = Reply(451, "4.4.0", (
                    f"{host} ({ip}:{port}) closed the connection right after the TLS handshake: it may require "
                    "a client certificate (TlsCertificateName) or refuse the one presented"))
            conn._trace("*", f"failed: {reply}")
            conn._trace("-", "")
            raise ConnectionFailure(reply, stage) from None
        conn.extensions = dict(smtp.esmtp_extensions)
        return conn

    async def _authenticate(self, auth: AuthPlan) -> None:
        where = f"{self.host} ({self.ip}:{self.port})"
        if auth.require_tls and self.tls_version is None:
            raise ConnectionFailure(Reply(451, "4.7.0", (
                f"BasicAuthRequireTLS: {where} did not offer TLS, so the credentials were not sent")), "auth")
        offered = [m.upper() for m in self.smtp.server_auth_methods]
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
        try:
            if mechanism == "XOAUTH2":
                response = await self.smtp.auth_xoauth2(auth.username, auth.secret)
            elif mechanism == "PLAIN":
                response = await self.smtp.auth_plain(auth.username, auth.secret)
            else:
                response = await self.smtp.auth_login(auth.username, auth.secret)
        except aiosmtplib.SMTPAuthenticationError as exc:
            peer = Reply.parse(exc.code, exc.message)
            self._trace("<", str(peer))
            raise ConnectionFailure(Reply(451, "4.7.0", f"AUTH {mechanism} as {auth.username} to {where} "
                                          f"was refused: {peer}"), "auth") from None
        self._trace("<", f"{response.code} {response.message}")
        self.authenticated_as = auth.username

    async def _hello(self, force_helo: bool) -> None:
        if not force_helo:
            response = await self._command(b"EHLO", (self.smtp.local_hostname or "localhost").encode("ascii"))
            if response.code == 250:
                self.smtp.last_ehlo_response = response
                return
        self._trace(">", f"HELO {self.smtp.local_hostname}")
        response = await self.smtp.helo()
        self._trace("<", f"{response.code} {response.message}")
        if response.code != 250:
            raise ConnectionFailure(_temporary(response, "HELO"), "helo")

    def _note_tls(self, plan: TlsPlan) -> None:
        obj = self.smtp.get_transport_info("ssl_object")
        if obj is None:
            return
        self.tls_version = obj.version()
        cipher = obj.cipher()
        self.tls_cipher = cipher[0] if cipher else None
        self._trace("*", f"TLS negotiated: {self.tls_version} {self.tls_cipher}")
        if plan.verify_peer is not None:
            problem = plan.verify_peer(obj.getpeercert() or {})
            if problem:
                raise ConnectionFailure(Reply(451, "4.4.0", (
                    f"TLS certificate name mismatch at {self.host} ({self.ip}:{self.port}): {problem}")),
                    "starttls")

    def supports(self, extension: str) -> bool:
        return self.smtp.supports_extension(extension)

    @property
    def usable(self) -> bool:
        return self.smtp.is_connected

    async def send(
        self, sender: str, recipients: list[str], body: bytes, *, eight_bit: bool = False, smtputf8: bool = False
    ) -> Transaction:
        """One transaction; never raises for what the peer says or does."""
        options: list[bytes] = []
        if self.supports("size"):
            limit = self.smtp.esmtp_extensions.get("size", "").strip()
            if limit.isdigit() and int(limit) > 0 and len(body) > int(limit):
                fail = Reply(550, "5.3.4", "SMTPSEND.OverAdvertisedSize; message size exceeds fixed maximum size")
                return Transaction({r: fail for r in recipients}, failure=fail)
            options.append(f"SIZE={len(body)}".encode())
        if eight_bit and self.supports("8bitmime"):
            options.append(b"BODY=8BITMIME")
        encoding = "ascii"
        if smtputf8 or not sender.isascii() or not all(r.isascii() for r in recipients):
            if not self.supports("smtputf8"):
                fail = Reply(550, "5.6.7", "SMTPSEND.Utf8; the remote server does not support SMTPUTF8")
                return Transaction({r: fail for r in recipients}, failure=fail)
            options.append(b"SMTPUTF8")
            encoding = "utf-8"
        try:
            mail = await self._command(b"MAIL", b"FROM:<" + sender.encode(encoding) + b">", *options)
            if mail.code != 250:
                reply = Reply.parse(mail.code, mail.message)
                await self._rset()
                return Transaction({r: reply for r in recipients}, failure=reply)
            results: dict[str, Reply] = {}
            accepted: list[str] = []
            for rcpt in recipients:
                response = await self._command(b"RCPT", b"TO:<" + rcpt.encode(encoding) + b">")
                results[rcpt] = Reply.parse(response.code, response.message)
                if response.code in (250, 251):
                    accepted.append(rcpt)
            if not accepted:
                await self._rset()
                return Transaction(results)
            self._trace(">", "DATA")
            try:
                response = await self.smtp.data(body)
                data_reply = Reply.parse(response.code, response.message)
            except aiosmtplib.SMTPResponseException as exc:
                data_reply = Reply.parse(exc.code, exc.message)
                if self.smtp.is_connected:
                    await self._rset()
            self._trace("<", str(data_reply))
            for rcpt in accepted:
                results[rcpt] = data_reply
            self.messages_sent += 1
            return Transaction(results, failure=None if data_reply.ok else data_reply, data_reply=data_reply)
        except (aiosmtplib.SMTPException, OSError, TimeoutError, ssl.SSLError) as exc:
            self.smtp.close()
            reply = transaction_error_reply(exc)
            self._trace("*", f"failed: {reply}")
            return Transaction({r: reply for r in recipients}, failure=reply)

    async def _rset(self) -> None:
        try:
            await self._command(b"RSET")
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            self.smtp.close()

    async def close(self) -> None:
        if self.smtp.is_connected:
            try:
                self._trace(">", "QUIT")
                await asyncio.wait_for(self.smtp.quit(), 5)
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                pass
        self.smtp.close()
        self._trace("-", "")


def _temporary(response: SMTPResponse, stage: str) -> Reply:
    reply = Reply.parse(response.code, response.message)
    if reply.ok:
        return Reply(451, "4.4.0", f"unexpected reply to {stage}: {reply}")
    # A refusal before the transaction says nothing about this message: retry elsewhere.
    return reply if reply.temporary else Reply(451, "4.4.0", f"{stage} refused: {reply}")


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def tls_error_reply(exc: BaseException, host: str, ip: str, port: int) -> Reply:
    """Name the TLS failure's cause: untrusted chain, expired, revoked, or the handshake itself."""
    where = f"{host} ({ip}:{port})" if host != ip else f"{ip}:{port}"
    cause = _ssl_cause(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        code = cause.verify_code
        message = cause.verify_message or str(cause)
        if code == 10:
            what = "has expired"
        elif code == 9:
            what = "is not yet valid"
        elif code == 23:
            what = "has been revoked"
        elif code in (2, 18, 19, 20, 21):
            what = f"is not trusted ({message})"
        else:
            what = f"failed verification ({message})"
        return Reply(451, "4.4.0", f"TLS certificate of {where} {what}")
    if cause is not None:
        return Reply(451, "4.4.0", f"TLS negotiation with {where} failed: {cause.reason or cause}")
    if isinstance(exc, TimeoutError):
        return Reply(451, "4.4.0", f"TLS negotiation with {where} timed out")
    return Reply(451, "4.4.0", f"TLS negotiation with {where} failed: {exc}")


def connection_error_reply(exc: BaseException, host: str, ip: str, port: int) -> Reply:
    where = f"{host} ({ip}:{port})" if host != ip else f"{ip}:{port}"
    if isinstance(exc, aiosmtplib.SMTPConnectResponseError):
        peer = Reply.parse(exc.code, exc.message)
        return Reply(451, "4.4.0", f"{where} refused the connection: {peer}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        peer = Reply.parse(exc.code, exc.message)
        return Reply(451, "4.4.0", f"{where} answered: {peer}")
    if isinstance(exc, TimeoutError):
        return Reply(441, "4.4.1", f"Connection timed out connecting to {where}")
    if isinstance(exc, ssl.SSLError):
        return Reply(451, "4.4.0", f"TLS negotiation with {where} failed: {exc.reason or exc}")
    if isinstance(exc, ConnectionRefusedError) or "refused" in str(exc).lower():
        return Reply(441, "4.4.1", f"Failed to connect to {where}: connection refused")
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return Reply(451, "4.4.0", f"{where} closed the connection: {exc}")
    return Reply(441, "4.4.1", f"Failed to connect to {where}: {exc}")


def transaction_error_reply(exc: BaseException) -> Reply:
    if isinstance(exc, TimeoutError):
        return Reply(421, "4.4.2", "Connection dropped due to TimedOut")
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | ConnectionError):
        return Reply(451, "4.4.0", "SMTPSEND.SuspiciousRemoteServerError; remote server disconnected abruptly")
    if isinstance(exc, ssl.SSLError):
        return Reply(451, "4.4.0", f"TLS error during the transaction: {exc.reason or exc}")
    return Reply(451, "4.4.0", f"SMTPSEND.SendingError; Error while sending message: {exc}")
