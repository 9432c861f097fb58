"""A receive connector's policy: who may relay, what is stamped, when 250 is said.

Relay: a client inside the connector's ``remote_ip_ranges``, or one that has
authenticated, may send to any recipient; anyone else gets Exchange's
``550 5.7.54`` at RCPT and nothing is queued.  At the end of DATA the message is
stamped (Received:, Message-ID:/Date: if missing), checked for a mail loop
(more Received: headers than ``max_hop_count`` fails every recipient with a
``5.4.6`` NDR), and committed; ``250`` is said only after that commit.  A store
failure answers ``451 4.3.0`` and the client keeps the message; a full disk ``452 4.3.1``
(Exchange's back pressure), already at MAIL while less than ``[queue] min_free_space``
(plus the declared SIZE) is free.  A message whose From:
domain has a DKIM signing config is signed before that commit (``dkim``); the body
hash is computed by the spool as the body arrives, so signing reads nothing again.  The body arrives
in a ``Spool`` (memory while small, an unnamed file when not) and is stamped
without being copied: a session's memory does not grow with its message.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from mailhop.clock import SYSTEM_CLOCK, Clock
from mailhop.config import ReceiveConnectorSettings
from mailhop.dkim.keyring import Keyring, from_domain
from mailhop.dkim.signer import sign
from mailhop.errors import SigningError, StorageFull, StoreError
from mailhop.headers import block
from mailhop.model.message import Body, MessageInfo, body_size
from mailhop.outcome import HOP_COUNT_EXCEEDED, Reply
from mailhop.queue.submission import Submission
from mailhop.receive import stamp
from mailhop.receive.spool import Spool, StampedBody
from mailhop.receive.users import UserStore
from mailhop.smtp.replies import (
    HEADER_TOO_BIG,
    INSUFFICIENT_RESOURCES,
    QUEUE_WRITE_FAILED,
    RELAY_DENIED,
)
from mailhop.smtp.server import DataSink, Envelope, Session

log = logging.getLogger(__name__)

SENDER_OK = Reply(250, "2.1.0", "Sender OK")
RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
AUTH_OK = Reply(235, "2.7.0", "Authentication successful")
AUTH_FAILED = Reply(535, "5.7.8", "Authentication credentials invalid")
AUTH_THROTTLED = Reply(454, "4.7.0", "Temporary authentication failure: too many failures, try again later")
SIGNING_FAILED = Reply(451, "4.3.5", "Temporary failure: the message cannot be signed, try again later")
AUTH_FAILURE_LIMIT = 10      # failures from one address ...
AUTH_FAILURE_WINDOW = 900.0  # ... within this many seconds: further AUTH refused at once


class Failures:
    """Failed AUTH attempts per source address, forgotten after ``AUTH_FAILURE_WINDOW``."""

    def __init__(self) -> None:
        self._by_source: dict[str, list[float]] = {}

    def recent(self, source: str, now: float) -> int:
        times = self._by_source.get(source)
        if not times:
            return 0
        fresh = [t for t in times if now - t < AUTH_FAILURE_WINDOW]
        if fresh:
            self._by_source[source] = fresh
        else:
            del self._by_source[source]
        return len(fresh)

    def add(self, source: str, now: float) -> int:
        self.recent(source, now)
        times = self._by_source.setdefault(source, [])
        times.append(now)
        if len(self._by_source) > 100_000:  # bounded: the oldest source goes
            self._by_source.pop(next(iter(self._by_source)))
        return len(times)


@dataclass(frozen=True, slots=True)
class Accepted:
    info: MessageInfo
    failed: dict[str, Reply]  # recipients failed at once (no route, a loop), with the reason


def free_space(path: Path) -> int:
    """Bytes free for an unprivileged writer on the file system of ``path``."""
    try:
        st = os.statvfs(path)
    except OSError:
        return 1 << 62  # not there yet (created at the first write): not what back pressure is for
    return st.f_bavail * st.f_frsize


def not_queued(session: Session, exc: StoreError) -> Reply:
    log.error("message from %s not queued: %s", session.peer_ip, exc)
    return INSUFFICIENT_RESOURCES if isinstance(exc, StorageFull) else QUEUE_WRITE_FAILED


class ReceiveHandler:
    def __init__(self, connector: ReceiveConnectorSettings, submission: Submission,
                 users: UserStore | None = None, clock: Clock = SYSTEM_CLOCK, keyring: Keyring | None = None) -> None:
        self.connector = connector
        self.keyring = keyring
        self.users = users
        self.submission = submission
        self.settings = submission.ctx.settings
        self.clock = clock
        self.fqdn = connector.fqdn or self.settings.server.fqdn
        self.spool_dir = self.settings.data_dir / "spool"
        self._failures = Failures()
        self._ranges = [(int(lo), int(hi), lo.version) for lo, hi in connector.ranges()]

    def may_relay(self, session: Session) -> bool:
        if session.auth_user is not None:
            return True
        return self._in_ranges(session.peer_ip)

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - one handler per receive connector, for the server's life
    def _in_ranges(self, peer_ip: str) -> bool:
        try:
            ip = ipaddress.ip_address(peer_ip)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        value = int(ip)
        return any(lo <= value <= hi for lo, hi, version in self._ranges if version == ip.version)

    async def on_connect(self, session: Session) -> Reply | None:
        return None

    async def on_mail(self, session: Session, envelope: Envelope) -> Reply:
        floor = self.settings.queue.min_free_space
        declared = envelope.params.get("SIZE") or "0"
        needed = (floor or 0) + (int(declared) if declared.isdigit() else 0)
        if floor and free_space(self.settings.data_dir) < needed:
            log.warning("MAIL from %s refused: less than %d bytes free in %s", session.peer_ip, needed,
                        self.settings.data_dir)
            return INSUFFICIENT_RESOURCES
        return SENDER_OK

    async def on_rcpt(self, session: Session, envelope: Envelope, address: str) -> Reply:
        if not self.may_relay(session):
            log.info("relay denied: %s from %s", address, session.peer_ip)
            return RELAY_DENIED
        return RECIPIENT_OK

    async def on_auth(self, session: Session, user: str, password: str) -> Reply:
        source = session.peer_ip
        now = self.clock.now()
        failures = self._failures.recent(source, now)
        if failures >= AUTH_FAILURE_LIMIT:
            # Guessing from this address: refused without a look at the password (no hash to
            # pay for), across all its connections, until its failures age out.
            log.warning("AUTH as %s from %s refused: %d failures in %.0f s", user, source, failures,
                        AUTH_FAILURE_WINDOW)
            return AUTH_THROTTLED
        if self.users is not None and await self.users.check(user, password):
            log.info("session %s from %s authenticated as %s", session.session_id, source, user)
            return AUTH_OK
        failures = self._failures.add(source, now)
        # Slow down guessing: each failure from this address waits longer, in every connection.
        delay = min(self.connector.failed_login_delay * failures, 10.0)
        log.warning("failed AUTH as %s from %s", user, source)
        await self.clock.sleep(delay)
        return AUTH_FAILED

    def data_sink(self, session: Session, envelope: Envelope) -> Spool:
        return Spool(self.spool_dir, hash_body=self.keyring is not None and self.keyring.active)

    def _signature(self, pairs: list[tuple[str, str]], header_block: bytes, sink: Spool, now: float) -> bytes:
        """The DKIM-Signature fields for the message (b"" when its From: domain is not signed).

        On the event loop: an RSA 2048 signature is about 0.35 ms of OpenSSL, and handing it
        to a thread (``cryptography`` releases the GIL) made the signed benchmark slower, not
        faster (docs/signing.md)."""
        if self.keyring is None:
            return b""
        domain = from_domain(block.first(pairs, "From"))
        keys = self.keyring.keys_for(domain) if domain else ()
        if not keys:
            return b""
        return sign(header_block, sink.body_hash(), keys, now)

    async def on_data(self, session: Session, envelope: Envelope, sink: DataSink) -> Reply:
        assert isinstance(sink, Spool)
        reply, _ = await self.accept(session, envelope, sink)
        return reply

    async def accept(self, session: Session, envelope: Envelope, sink: Spool) -> tuple[Reply, Accepted | None]:
        """Stamp, sign, route and commit a received message: the answer, and when it was queued,
        what was queued (``receive.local`` reports it to API clients)."""
        try:
            sink.check()
        except StoreError as exc:
            return not_queued(session, exc), None
        now = self.clock.now()
        head = sink.head
        if not sink.in_memory and b"\r\n\r\n" not in head and not head.startswith(b"\r\n"):
            return HEADER_TOO_BIG, None  # the header block does not end within the first HEAD_LIMIT bytes
        headers, _ = block.split(head)
        pairs = block.fields(headers)
        hops = block.count(pairs, "Received")
        additions, message_id = stamp.missing_headers(pairs, self.fqdn, now)
        subject = block.first(pairs, "Subject")
        info = self.submission.new_info(
            sender=envelope.mail_from,
            message_id=message_id,
            subject=block.decoded(subject) if subject is not None else None,
            client_ip=session.peer_ip,
            client_hostname=session.helo,
            receive_connector=self.connector.name,
            auth_user=session.auth_user,
            smtputf8=envelope.smtputf8,
            eight_bit=envelope.eight_bit,
            require_tls=envelope.require_tls,
            # RFC 8689 section 5: the sender asks that DANE and MTA-STS not hold the message back.
            # Ignored with REQUIRETLS, which asks the opposite.
            tls_optional=not envelope.require_tls and (block.first(pairs, "TLS-Required") or "").strip().lower() == "no",
            dsn=envelope.dsn,
            binary_mime=envelope.binary_mime,
        )
        received = stamp.received(session, self.fqdn, info.id, envelope.rcpt_to, now)
        try:
            received = self._signature(pairs, received + headers + additions, sink, now) + received
        except SigningError as exc:
            log.error("message from %s not queued: %s", session.peer_ip, exc)
            return SIGNING_FAILED, None
        body: Body
        if sink.in_memory:
            body = stamp.stamp(sink.data(), received, additions)
        else:
            body = StampedBody(sink, *stamp.layout(head, received, additions))
        info.size = body_size(body)
        loop = HOP_COUNT_EXCEEDED if hops + 1 > self.settings.server.max_hop_count else None
        try:
            failed = await self.submission.submit(info, body, list(envelope.rcpt_to), fail_all=loop,
                                                  headers=received + headers + additions,
                                                  recipient_dsn=envelope.rcpt_dsn, source=session.via or "SMTP")
        except StoreError as exc:
            return not_queued(session, exc), None
        return Reply(250, "2.0.0", f"Ok: queued as {info.id}"), Accepted(info, {r.address: r.reply for r in failed})
