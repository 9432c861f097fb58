"""A session with a scripted next hop, as ``ClientConnection`` would behave (see ``mailhop.testing.nexthop``)."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailhop.errors import ConnectionFailure, MailhopError, ProtocolError
from mailhop.outcome import Reply
from mailhop.smtp.failures import transaction_error_reply
from mailhop.smtp.outgoing import Body, DotStuffer, dot_stuff
from mailhop.smtp.session import (
    AuthPlan,
    DsnRequest,
    NextHopSession,
    TlsPlan,
    Trace,
    Transaction,
    auth_mechanism,
    data_refused,
    data_result,
    mail_parameters,
    refused_before_mail,
)
from mailhop.testing.nexthop_script import (
    AUTH_REFUSED,
    TLS_CIPHER,
    TLS_VERSION,
    TOO_BIG,
    Delivered,
    FakeEndpoint,
    as_received,
    unstuff,
    where_of,
)

if TYPE_CHECKING:
    from mailhop.testing.nexthop import FakeNextHop


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
    tls_policy: str | None = None
    extensions: dict[str, str] = field(default_factory=dict)
    authenticated_as: str | None = None
    closed: bool = False
    peer_closed: bool = False

    # --- opening --------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return where_of(self.host, self.ip, self.port)

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
        self.tls_policy = plan.policy
        if plan.verify_chain is not None:  # a fake endpoint has no certificate chain to show
            raise ConnectionFailure(Reply(451, "4.7.5", f"{self._where}: no certificate chain (fake endpoint)"),
                                    "starttls")
        if plan.verify_peer is not None:
            problem = plan.verify_peer(dict(self.endpoint.certificate))
            if problem:
                raise ConnectionFailure(Reply(451, "4.4.0", (
                    f"TLS certificate name mismatch at {self._where}: {problem}")), "starttls")

    def _authenticate(self, auth: AuthPlan) -> None:
        where = self._where
        mechanism = auth_mechanism(auth, self.extensions, self.tls_version is not None, where)
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
        self, sender: str, recipients: list[str], body: Body, *, eight_bit: bool = False, smtputf8: bool = False,
        require_tls: bool = False, dsn: DsnRequest | None = None, binary_mime: bool = False,
    ) -> Transaction:
        """One transaction, answered as ClientConnection answers it; never raises for what the peer does."""
        await asyncio.sleep(0)
        size = len(body) if isinstance(body, bytes) else body.size
        options = mail_parameters(sender, recipients, size, self.extensions, eight_bit, smtputf8, require_tls,
                                  binary_mime)
        if isinstance(options, Reply):
            return refused_before_mail(options, recipients)
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
        if data_start.code != 354:  # refused: the client says RSET (or drops a peer that said 2xx/3xx)
            failure = data_refused(data_start)
            if failure is not data_start:
                self.closed = True
            return Transaction({**results, **{r: failure for r in accepted}}, failure=failure)
        if isinstance(body, bytes):
            wire = dot_stuff(body)
        else:
            stuffer = DotStuffer()
            pieces = [stuffer.feed(chunk) async for chunk in body.chunks()]
            wire = b"".join([*pieces, stuffer.end()])
        received = unstuff(wire)
        if ep.disconnect == "data":
            raise self._peer_gone()
        if ep.size and len(wire) - 3 > ep.size:  # the peer counts what it read, stuffing included
            data_reply = as_received(TOO_BIG)
        else:
            answer = as_received(ep.data)
            data_reply = data_result(answer)
            if data_reply is not answer:  # the client drops a peer out of step
                self.closed = True
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
