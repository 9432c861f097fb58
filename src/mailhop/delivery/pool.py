"""Delivery queues in memory: one per next hop, each with its own connections.

``DeliveryPool.push`` hands a ``Job`` (one message, the recipients that share a
next hop) to the ``NextHop`` for its connector and destination.  A next hop runs
up to ``max_per_domain_outbound_connections`` workers (and the pool at most
``max_outbound_connections`` in all); each worker keeps its SMTP connection for
the next job for up to SmtpMaxMessagesPerConnection messages and while jobs keep
coming (``connection_cache_time``, never beyond ConnectionInactivityTimeOut).

A job goes to the endpoints in order: a connection failure, or a 4xx to the
whole transaction, moves it to the next endpoint; so does a host that lacks
SMTPUTF8 for a message that needs it (5.6.7 only when every host lacks it), and
a 4xx for some recipients, for those recipients (the others are done).  A 2xx or
5xx for a recipient is final for that attempt, and a recipient that got 4xx
everywhere keeps the last one; the result names the last endpoint that answered
recipients.  When no endpoint can be reached at all, the job's result has
``hop_failure`` set and every job still waiting for that next hop is returned
with it, so the scheduler can put the queue in Retry.  Results go to the
``on_result`` callback; this module never touches the store.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mailhop.clock import SYSTEM_CLOCK, Clock
from mailhop.config import DeliverySettings
from mailhop.delivery.body import without_internal_headers
from mailhop.delivery.dns import DnsError, Resolver
from mailhop.delivery.endpoints import Endpoint, smart_host_endpoints
from mailhop.delivery.mx import DeliveryDnsError, dns_failed_reply, mx_endpoints, nxdomain_reply
from mailhop.delivery.security import POLICY_LABELS
from mailhop.errors import ConnectionFailure, MailhopError
from mailhop.model.connector import SendConnector
from mailhop.model.message import Claim
from mailhop.model.route import DNS
from mailhop.outcome import Reply
from mailhop.smtp.client import ClientConnection
from mailhop.smtp.outgoing import Body
from mailhop.smtp.session import AuthPlan, DsnRequest, NextHopSession, Opener, TlsPlan
from mailhop.tracking.protocol import ProtocolLog, SessionTrace

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Job:
    claim: Claim                 # the message and the recipients bound for this next hop
    connector: SendConnector
    next_hop: str                # recipient domain (DNS) or smart-host list


@dataclass(slots=True)
class JobResult:
    job: Job
    replies: dict[int, Reply]            # recipient id -> reply
    endpoint: Endpoint | None = None
    tls_version: str | None = None
    tls_cipher: str | None = None
    tls_policy: str | None = None
    dsn_passed: bool = False     # the next hop took the recipients' NOTIFY (no "relayed" DSN from here)
    hop_failure: bool = False
    attempted: bool = True


BodyLoader = Callable[[Claim], Awaitable[Body]]
open_session: Opener = ClientConnection.open  # the real SMTP client

__all__ = ["DeliveryPool", "Job", "JobResult", "NextHop", "Opener", "TlsPlanner", "default_tls_plan", "failover_reply",
           "no_auth", "open_session"]
ResultSink = Callable[[JobResult], None]
# (connector, endpoint, next hop domain, the message's MessageInfo.tls_demand) -> plan
TlsPlanner = Callable[[SendConnector, Endpoint, str, str], Awaitable[TlsPlan]]
AuthPlanner = Callable[[SendConnector], Awaitable[AuthPlan | None]]
# (plan, endpoint, TLS came up, the failure's reply or None): one session attempt's TLS outcome
TlsOutcome = Callable[[TlsPlan, Endpoint, bool, Reply | None], None]


def no_tls_outcome(plan: TlsPlan, endpoint: Endpoint, tls_up: bool, failure: Reply | None) -> None:
    return None


def failover_reply(errors: list[tuple[Endpoint, Reply]]) -> Reply:
    """Exchange's LastError after every endpoint failed, naming the first cause."""
    first = errors[0][1]
    last_ep = errors[-1][0]
    if len(errors) == 1:
        return Reply(first.code, first.enhanced, f"{first.text}. The last endpoint attempted was {last_ep}")
    # Every host refused for TLS policy (DANE, MTA-STS): the class stays 4.7.x, so that the
    # NDR at expiry is 5.7.x and says why.
    enhanced = first.enhanced if all(r.enhanced.startswith("4.7.") for _, r in errors) else "4.4.0"
    return Reply(
        451, enhanced,
        f'Primary target IP address responded with: "{first}." Attempted failover to alternate host, '
        "but that did not succeed. Either there are no alternate hosts, or delivery failed to all "
        f"alternate hosts. The last endpoint attempted was {last_ep}",
    )


async def default_tls_plan(connector: SendConnector, endpoint: Endpoint, domain: str, demand: str) -> TlsPlan:
    return TlsPlan(starttls=not connector.ignore_starttls, required=connector.require_tls)


async def no_auth(connector: SendConnector) -> AuthPlan | None:
    return None


async def _close(conn: NextHopSession) -> None:
    """QUIT and close; a session that fails even at that is simply dropped."""
    try:
        await conn.close()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("closing the session to %s failed", conn.ip)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class NextHop:
    def __init__(self, pool: DeliveryPool, connector: SendConnector, next_hop: str) -> None:
        self.pool = pool
        self.connector = connector
        self.next_hop = next_hop
        self.jobs: deque[Job] = deque()
        self.workers = 0
        self.waiting: deque[asyncio.Future[None]] = deque()

    def push(self, job: Job) -> None:
        self.connector = job.connector  # pick up edits of the connector (smart hosts, options)
        self.jobs.append(job)
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._maybe_spawn()

    def _maybe_spawn(self) -> None:
        s = self.pool.settings
        if (self.jobs and self.workers < s.max_per_domain_outbound_connections
                and self.pool.connections < s.max_outbound_connections and not self.pool.stopping):
            self.workers += 1
            self.pool.connections += 1
            task = asyncio.create_task(self._worker(), name=f"deliver {self.next_hop}")
            self.pool.tasks.add(task)
            task.add_done_callback(self.pool.tasks.discard)

    async def _next_job(self, connected: bool) -> Job | None:
        if self.jobs:
            return self.jobs.popleft()
        if not connected or self.pool.stopping:
            return None
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append(waiter)
        idle = min(self.pool.settings.connection_cache_time, self.connector.connection_inactivity_timeout)
        # A timer that ends the wait, not wait_for: in 3.11 that makes a task per wait.
        clock = self.pool.clock
        timer = clock.call_at(clock.now() + idle, functools.partial(_wake, waiter))
        try:
            await waiter
        finally:
            timer.cancel()
        return self.jobs.popleft() if self.jobs else None

    async def _worker(self) -> None:
        conn: NextHopSession | None = None
        # The connector settings and the message's TLS demand the connection was opened for: a
        # session set up for "TLS-Required: No" must not carry a message DANE protects, and one
        # without validated TLS no REQUIRETLS message.
        opened_for: tuple[SendConnector, str] | None = None
        try:
            while True:
                job = await self._next_job(conn is not None)
                if job is None:
                    break
                if conn is not None and (
                    not conn.usable or conn.messages_sent >= job.connector.smtp_max_messages_per_connection
                    or (job.connector, job.claim.message.tls_demand) != opened_for  # TLS, auth or hosts may differ
                ):
                    await _close(conn)
                    conn = None
                try:
                    result, conn = await self._deliver(job, conn)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # whatever went wrong, every recipient of the job gets a result
                    log.exception("delivery of message %s to %s failed", job.claim.message.id, self.next_hop)
                    reply = Reply(451, "4.3.0", f"SMTPSEND.InternalError; the delivery attempt failed: "
                                                f"{type(exc).__name__}")
                    result = JobResult(job, {r.id: reply for r in job.claim.recipients})
                    if conn is not None:
                        await _close(conn)
                        conn = None
                opened_for = (job.connector, job.claim.message.tls_demand)
                self.pool.on_result(result)
                if result.hop_failure:
                    while self.jobs:
                        other = self.jobs.popleft()
                        reply = next(iter(result.replies.values()))
                        self.pool.on_result(JobResult(other, {r.id: reply for r in other.claim.recipients},
                                                      hop_failure=True, attempted=True))
                    break
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery worker for %s failed", self.next_hop)
        finally:
            # The slots first: nothing below may keep them taken.
            self.workers -= 1
            self.pool.connections -= 1
            try:
                if conn is not None:
                    await _close(conn)
            finally:
                self.pool.next_hop_idle(self)
                self._maybe_spawn()

    async def _deliver(self, job: Job, conn: NextHopSession | None) -> tuple[JobResult, NextHopSession | None]:
        claim = job.claim
        body = await self.pool.load_body(claim)
        if not job.connector.cloud_services_mail_enabled:
            body = without_internal_headers(body)
        pending = list(claim.recipients)   # no final reply yet
        replies: dict[int, Reply] = {}       # the latest reply of each recipient
        errors: list[tuple[Endpoint, Reply]] = []
        tried: set[Endpoint] = set()
        transaction_started = False
        answered: NextHopSession | None = None  # the last session that answered recipients
        dsn_passed = False
        dsn = (DsnRequest(claim.message.dsn, {r.address: r.dsn for r in claim.recipients})
               if claim.message.dsn or any(r.dsn for r in claim.recipients) else None)

        def result() -> JobResult:
            c = answered
            ep = Endpoint(c.host, c.ip, c.port) if c is not None else None
            return JobResult(job, replies, ep, c.tls_version if c else None, c.tls_cipher if c else None,
                             c.tls_policy if c and c.tls_version else None, dsn_passed)

        async def attempt(c: NextHopSession) -> JobResult | None:
            """Send to the recipients still pending; the job's result once none is left."""
            nonlocal transaction_started, pending, answered, dsn_passed
            tx = await c.send(claim.message.sender, [r.address for r in pending], body,
                              eight_bit=claim.message.eight_bit, smtputf8=claim.message.smtputf8,
                              require_tls=claim.message.require_tls, dsn=dsn, binary_mime=claim.message.binary_mime)
            transaction_started = True
            if tx.failure is not None and (tx.failure.temporary or tx.next_host):
                errors.append((Endpoint(c.host, c.ip, c.port), tx.failure))
                return None
            answered = c
            dsn_passed = tx.dsn_passed
            for r in pending:
                replies[r.id] = tx.recipients[r.address]
            # A 4xx for a recipient here may be this host's alone (greylisting, a full mailbox
            # server): it is tried at the next endpoint in this attempt, as Postfix does.
            pending = [r for r in pending if replies[r.id].temporary]
            return result() if not pending else None

        if conn is not None:
            tried.add(Endpoint(conn.host, conn.ip, conn.port))
            done = await attempt(conn)
            if done is not None:
                return done, conn
            await _close(conn)
            conn = None
        try:
            endpoints = await self.pool.endpoints(job.connector, job.next_hop)
        except DnsError as exc:
            if isinstance(exc, DeliveryDnsError):
                reply = exc.reply
            else:
                reply = nxdomain_reply(job.next_hop) if exc.permanent else dns_failed_reply(exc)
            return JobResult(job, {r.id: reply for r in claim.recipients}, hop_failure=reply.temporary,
                             attempted=True), None
        for ep in endpoints:
            if ep in tried:
                continue
            tried.add(ep)
            try:
                conn = await self.pool.connect(job, ep)
            except ConnectionFailure as exc:
                errors.append((ep, exc.reply))
                continue
            done = await attempt(conn)
            if done is not None:
                return done, conn
            await _close(conn)
            conn = None
        if answered is not None:  # some recipients were answered: the others keep their last 4xx
            return result(), None
        if not errors:
            reply = Reply(451, "4.4.0", f"No endpoint to deliver to for {job.next_hop}")
        elif all(not r.temporary for _, r in errors):  # every host lacked what the message needs
            first = errors[0][1]
            reply = Reply(first.code, first.enhanced, f"{first.text} (none of the {len(errors)} host(s) tried does). "
                                                      f"The last endpoint attempted was {errors[-1][0]}")
        else:
            reply = failover_reply(errors)
        return JobResult(job, {r.id: reply for r in claim.recipients}, errors[-1][0] if errors else None,
                         hop_failure=not transaction_started), None


class DeliveryPool:
    def __init__(
        self, settings: DeliverySettings, resolver: Resolver, helo_name: str, load_body: BodyLoader,
        on_result: ResultSink, tls_plan: TlsPlanner = default_tls_plan,
        protocol_log: ProtocolLog | None = None, auth_plan: AuthPlanner = no_auth,
        opener: Opener = open_session, clock: Clock = SYSTEM_CLOCK, tls_outcome: TlsOutcome = no_tls_outcome,
    ) -> None:
        self.settings = settings
        self.tls_outcome = tls_outcome
        self.opener = opener
        self.clock = clock
        self.resolver = resolver
        self.helo_name = helo_name
        self.load_body = load_body
        self.on_result = on_result
        self.tls_plan = tls_plan
        self.auth_plan = auth_plan
        self.protocol_log = protocol_log
        self.hops: dict[tuple[str, str], NextHop] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.connections = 0
        self.stopping = False

    async def endpoints(self, connector: SendConnector, next_hop: str) -> list[Endpoint]:
        if connector.dns_routing_enabled:
            return await mx_endpoints(next_hop, connector.port, self.resolver, self.settings.max_mx_hosts,
                                      allow_private=self.settings.allow_private_mx)
        return await smart_host_endpoints(connector, self.resolver)

    async def connect(self, job: Job, ep: Endpoint) -> NextHopSession:
        """Open a session to ``ep`` as the connector demands (TLS, AUTH); ConnectionFailure if not.

        Opportunistic TLS that fails its handshake is retried once in clear text, as
        Postfix's "may" level does; when TLS is required it never is, nor when the connector
        authenticates (the credentials would go in clear to whoever broke the handshake).
        """
        connector = job.connector
        try:
            plan = await self.tls_plan(connector, ep, job.next_hop, job.claim.message.tls_demand)
            auth = await self.auth_plan(connector)
        except ConnectionFailure:  # the TLS policy refuses this host (DANE, MTA-STS): 4.7.5 with the reason
            raise
        except MailhopError as exc:
            raise ConnectionFailure(Reply(451, "4.4.0", f"connector '{connector.name}': {exc}"), "config") from None

        async def open_with(tls: TlsPlan) -> NextHopSession:
            return await self.opener(
                ep.host, ep.ip, ep.port, connector.fqdn or self.helo_name, tls=tls,
                connect_timeout=self.settings.connect_timeout, command_timeout=self.settings.command_timeout,
                force_helo=connector.force_helo, trace=self.trace(connector, ep), auth=auth)

        try:
            session = await open_with(plan)
        except ConnectionFailure as exc:
            if exc.stage == "starttls":
                self.tls_outcome(plan, ep, False, exc.reply)
            label = POLICY_LABELS.get(plan.policy)
            if exc.stage == "starttls" and label:
                text = exc.reply.text if exc.reply.text.startswith(label) else f"{label}: {exc.reply.text}"
                raise ConnectionFailure(Reply(451, "4.7.5", text), "starttls") from None
            if exc.stage != "starttls" or plan.required or plan.implicit:
                raise
            if auth is not None:
                # Whoever broke the handshake would get the password in clear: BasicAuth may go
                # in clear to a host that offers no TLS (Exchange's semantics), never after this.
                raise ConnectionFailure(Reply(451, "4.7.0", (
                    f"{exc.reply.text}; credentials are never sent in clear text after a failed TLS "
                    "handshake, so this host is not tried without TLS")), "starttls") from None
            log.info("opportunistic TLS with %s failed (%s); trying without TLS", ep, exc.reply)
            return await open_with(TlsPlan(starttls=False))
        if plan.starttls:
            self.tls_outcome(plan, ep, session.tls_version is not None, None)
        return session

    def trace(self, connector: SendConnector, endpoint: Endpoint) -> SessionTrace | None:
        if self.protocol_log is None or connector.protocol_logging_level != "Verbose":
            return None
        return SessionTrace(self.protocol_log, connector.name, str(endpoint))

    def push(self, job: Job) -> None:
        key = (job.connector.guid, job.next_hop.lower() if job.connector.delivery_type == DNS else "")
        hop = self.hops.get(key)
        if hop is None:
            hop = self.hops[key] = NextHop(self, job.connector, job.next_hop)
        hop.push(job)

    def next_hop_idle(self, hop: NextHop) -> None:
        if hop.workers == 0 and not hop.jobs:
            for key, value in list(self.hops.items()):
                if value is hop:
                    del self.hops[key]
        else:
            # A connection slot was freed: let another next hop with waiting jobs use it.
            for other in self.hops.values():
                if other.jobs and not other.waiting:
                    other._maybe_spawn()
                    if self.connections >= self.settings.max_outbound_connections:
                        break

    def take_pending(self) -> list[Job]:
        """Remove and return the jobs no worker has started."""
        jobs = [job for hop in self.hops.values() for job in hop.jobs]
        for hop in self.hops.values():
            hop.jobs.clear()
        return jobs

    async def stop(self, grace: float) -> list[Job]:
        """Stop taking jobs; wait ``grace`` for deliveries in flight; return jobs never started."""
        self.stopping = True
        unstarted: list[Job] = []
        for hop in self.hops.values():
            unstarted.extend(hop.jobs)
            hop.jobs.clear()
            for waiter in hop.waiting:
                if not waiter.done():
                    waiter.set_result(None)
        if self.tasks:
            _, pending = await asyncio.wait(list(self.tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        return unstarted
