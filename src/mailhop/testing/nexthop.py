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

from mailhop.errors import ConnectionFailure
from mailhop.outcome import Reply
from mailhop.smtp.session import AuthPlan, Opener, TlsPlan, Trace
from mailhop.testing.nexthop_script import (
    Delivered,
    FakeEndpoint,
    ScriptedReply,
    as_received,
    where_of,
)
from mailhop.testing.nexthop_session import FakeSession

__all__ = ["Delivered", "FakeEndpoint", "FakeNextHop", "FakeSession", "ScriptedReply", "as_received"]


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
        where = where_of(host, ip, port)
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


def _opens(hop: FakeNextHop) -> Opener:  # mypy checks here that FakeNextHop.open is an Opener
    return hop.open
