"""What delivery hands the SMTP client and gets back: TLS and AUTH plans, transactions, sessions.

``TlsPlan`` and ``AuthPlan`` are decided by delivery (``delivery.tls``, ``delivery.auth``);
a ``NextHopSession`` carries ``Transaction``s; an ``Opener`` opens sessions and raises
``ConnectionFailure`` (always 4xx) when it cannot.  ``smtp.client.ClientConnection`` is
the real implementation, ``mailhop.testing.nexthop`` a scripted fake under the same
contract (tests/contract/test_smtp_client.py).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from mailhop.outcome import Reply
from mailhop.smtp.outgoing import Body

Trace = Callable[[str, str], None]  # (event, data): Exchange's protocol log event characters


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


class NextHopSession(Protocol):
    """An open SMTP session to one endpoint, as delivery uses it (``ClientConnection`` is the
    real one; ``mailhop.testing.nexthop`` has a scripted fake under the same contract)."""

    host: str
    ip: str
    port: int
    messages_sent: int
    tls_version: str | None
    tls_cipher: str | None

    @property
    def usable(self) -> bool: ...

    async def send(self, sender: str, recipients: list[str], body: Body, *, eight_bit: bool = False,
                   smtputf8: bool = False) -> Transaction: ...

    async def close(self) -> None: ...


class Opener(Protocol):
    """Opens a session (``ClientConnection.open``): ConnectionFailure, always 4xx, when it cannot."""

    async def __call__(self, host: str, ip: str, port: int, helo: str, *, tls: TlsPlan, connect_timeout: float,
                       command_timeout: float, force_helo: bool = False, trace: Trace | None = None,
                       auth: AuthPlan | None = None) -> NextHopSession: ...


def no_verify_context() -> ssl.SSLContext:
    """The context of a ``TlsPlan`` without one: encrypt, verify nothing (opportunistic TLS)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx
