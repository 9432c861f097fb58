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

from mailhop.errors import ConnectionFailure
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
    # Called with the peer's chain as sent (DER, leaf first), verified or not (DANE); returns
    # why it is refused (the attempt fails with 4.7.5), or None.
    verify_chain: Callable[[list[bytes]], str | None] | None = None
    # The policy that decided this plan, for the tracking log: dane, mta-sts, connector,
    # opportunistic (delivery.tls).
    policy: str = "opportunistic"
    # Delivery's own note for TLS reporting (delivery.security.Report); the client ignores it.
    report: Any = None


@dataclass(frozen=True, slots=True)
class AuthPlan:
    """Credentials for the next hop; the secret is never logged."""

    username: str
    secret: str
    xoauth2: bool = False
    require_tls: bool = False      # BasicAuthRequireTLS: no credentials in clear text


@dataclass(frozen=True, slots=True)
class DsnRequest:
    """A message's DSN parameters (RFC 3461) for a next hop that offers DSN: the MAIL part
    (``RET=HDRS ENVID=...``) and each recipient's RCPT part (``NOTIFY=... ORCPT=...``)."""

    mail: str | None
    rcpt: dict[str, str | None]

    def rcpt_line(self, address: str) -> str:
        params = self.rcpt.get(address)
        return f"RCPT TO:<{address}> {params}" if params else f"RCPT TO:<{address}>"


@dataclass(slots=True)
class Transaction:
    """The outcome of one MAIL/RCPT/DATA transaction."""

    recipients: dict[str, Reply]
    # Whole-transaction failure (MAIL or DATA refused, connection lost): retry elsewhere if temporary.
    failure: Reply | None = None
    data_reply: Reply | None = None
    # The failure is this host's alone (it lacks an extension the message needs): another
    # endpoint of the same next hop may take the message, though the reply is permanent.
    next_host: bool = False
    # The next hop offered DSN and was given the message's DSN parameters (RFC 3461): it, not
    # this server, reports success to the recipients that asked.
    dsn_passed: bool = False


class NextHopSession(Protocol):
    """An open SMTP session to one endpoint, as delivery uses it (``ClientConnection`` is the
    real one; ``mailhop.testing.nexthop`` has a scripted fake under the same contract)."""

    host: str
    ip: str
    port: int
    messages_sent: int
    tls_version: str | None
    tls_cipher: str | None
    tls_policy: str | None       # TlsPlan.policy once TLS is up

    @property
    def usable(self) -> bool: ...

    async def send(self, sender: str, recipients: list[str], body: Body, *, eight_bit: bool = False,
                   smtputf8: bool = False, require_tls: bool = False, dsn: DsnRequest | None = None,
                   binary_mime: bool = False) -> Transaction:
        ...

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


NO_SMTPUTF8 = Reply(550, "5.6.7", "SMTPSEND.Utf8; the remote server does not support SMTPUTF8")
NO_BINARYMIME = Reply(550, "5.6.3", "SMTPSEND.BinaryMime; the remote server does not support BINARYMIME and "
                                    "CHUNKING, and the message's binary body is not converted")
NO_REQUIRETLS = Reply(550, "5.7.30", "REQUIRETLS support required: the next hop does not offer REQUIRETLS "
                                     "(RFC 8689), so the message, sent with REQUIRETLS, was not given to it")


def refused_before_mail(reply: Reply, recipients: list[str]) -> Transaction:
    """The transaction ``mail_parameters`` refused: nothing was sent.  A host without SMTPUTF8
    leaves the message to the next endpoint (RFC 6531 section 3.2: never downgraded here);
    5.6.7 only when no endpoint has it.  The same for a REQUIRETLS message and a host without
    REQUIRETLS (5.7.30)."""
    return Transaction({r: reply for r in recipients}, failure=reply,
                       next_host=reply in (NO_SMTPUTF8, NO_REQUIRETLS, NO_BINARYMIME))


def mail_parameters(sender: str, recipients: list[str], size: int, extensions: dict[str, str],
                    eight_bit: bool, smtputf8: bool, require_tls: bool = False,
                    binary_mime: bool = False) -> list[str] | Reply:
    """The MAIL FROM parameters for a message, or the reply that fails it before anything is
    sent: bigger than the advertised SIZE (5.3.4), SMTPUTF8 needed and not offered (5.6.7),
    REQUIRETLS needed and not offered (5.7.30), a binary body and no BINARYMIME (5.6.3)."""
    options: list[str] = []
    if "size" in extensions:
        limit = extensions.get("size", "").strip()
        if limit.isdigit() and int(limit) > 0 and size > int(limit):
            return Reply(550, "5.3.4", "SMTPSEND.OverAdvertisedSize; message size exceeds fixed maximum size")
        options.append(f"SIZE={size}")
    if binary_mime:
        if "binarymime" not in extensions or "chunking" not in extensions:
            return NO_BINARYMIME
        options.append("BODY=BINARYMIME")
    elif eight_bit and "8bitmime" in extensions:
        options.append("BODY=8BITMIME")
    if smtputf8 or not sender.isascii() or not all(r.isascii() for r in recipients):
        if "smtputf8" not in extensions:
            return NO_SMTPUTF8
        options.append("SMTPUTF8")
    if require_tls:
        if "requiretls" not in extensions:
            return NO_REQUIRETLS
        options.append("REQUIRETLS")
    return options


def auth_mechanism(auth: AuthPlan, extensions: dict[str, str], over_tls: bool, where: str) -> str:
    """The mechanism to authenticate with, or ConnectionFailure (451 4.7.0) when the credentials
    must not be sent: no TLS where the plan requires it, or no mechanism the plan can use."""
    if auth.require_tls and not over_tls:
        mechanism_name = "XOAUTH2" if auth.xoauth2 else "BasicAuthRequireTLS"
        raise ConnectionFailure(Reply(451, "4.7.0", (
            f"{mechanism_name}: {where} did not offer TLS, so the credentials were not sent")), "auth")
    offered = extensions.get("auth", "").upper().split()
    if auth.xoauth2:
        mechanism = "XOAUTH2" if "XOAUTH2" in offered else None
    else:
        mechanism = next((m for m in ("PLAIN", "LOGIN") if m in offered), None)
    if mechanism is None:
        wanted = "XOAUTH2" if auth.xoauth2 else "PLAIN or LOGIN"
        raise ConnectionFailure(Reply(451, "4.7.0", (
            f"{where} offers no usable AUTH mechanism: wanted {wanted}, offered {' '.join(offered) or 'none'}")),
            "auth")
    return mechanism


def data_refused(data_start: Reply) -> Reply:
    """What the accepted recipients get when DATA is answered with anything but 354: the
    refusal itself, or, for a positive reply (a broken next hop that says 250 to DATA has
    taken no message), a temporary failure of the transaction."""
    if data_start.code < 400:
        return Reply(451, "4.5.0", f"SMTPSEND.ProtocolError; the next hop answered DATA with "
                                   f"'{data_start}' instead of 354: nothing was sent")
    return data_start


def data_result(data_reply: Reply) -> Reply:
    """The outcome of the reply to the end of DATA: only 2xx delivers (a 3xx there is a
    next hop out of step, a temporary failure)."""
    if 300 <= data_reply.code < 400:
        return Reply(451, "4.5.0", f"SMTPSEND.ProtocolError; the next hop answered the end of the message "
                                   f"with '{data_reply}'")
    return data_reply
