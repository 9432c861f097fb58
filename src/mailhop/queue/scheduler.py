"""The scheduler: leases due recipients, routes them, feeds delivery, records outcomes.

Work reaches delivery two ways: a freshly received message is handed over in
memory right after its commit (its recipients were leased to this server in the
same transaction), and everything else is claimed from the store when due.  The
store is the truth: a lease that is not renewed (the process died) frees the
recipient for this server's next incarnation or, with a shared store, for
another server.

For each result it decides, recipient by recipient, from the reply class that
the SMTP client assigned: delivered, deferred (``retry`` with a next attempt
time; the queue goes to Retry when its next hop could not be reached at all), or
failed, with an NDR composed from the body at hand and committed in the same
transaction.  Expiry (``4.4.7 QUEUE.Expired``) and the one-time delay DSN happen
when a recipient comes due at those moments; retry times are capped so it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from mailhop.delivery.auth import Credentials
from mailhop.delivery.dns import Resolver
from mailhop.delivery.pool import (
    DeliveryPool,
    Job,
    JobResult,
    TlsPlanner,
    default_tls_plan,
)
from mailhop.errors import MailhopError
from mailhop.model.message import (
    DELIVERED,
    FAILED,
    NORMAL,
    READY,
    RETRY,
    Claim,
    MessageInfo,
    RecipientRow,
    RecipientUpdate,
    RecordBatch,
)
from mailhop.model.route import (
    RELAY_TO_SOURCE,
    SUBMISSION_QUEUE,
    UNDEFINED,
    UNREACHABLE,
    UNREACHABLE_QUEUE,
)
from mailhop.outcome import POISON as POISON_REPLY
from mailhop.outcome import QUEUE_EXPIRED, Reply
from mailhop.queue import dsn
from mailhop.queue.journal import CrashJournal
from mailhop.queue.runtime import Runtime
from mailhop.queue.submission import Placement, Submission, place
from mailhop.routing.router import Router
from mailhop.store.base import QueueState, ServerInfo
from mailhop.tracking.protocol import ProtocolLog

log = logging.getLogger(__name__)

CLAIM_BATCH = 500


class Scheduler:
    def __init__(
        self, rt: Runtime, submission: Submission, resolver: Resolver,
        tls_plan: TlsPlanner = default_tls_plan, protocol_log: ProtocolLog | None = None,
    ) -> None:
        self.credentials = Credentials(rt.store)
        self.rt = rt
        self.submission = submission
        s = rt.settings
        self.pool = DeliveryPool(
            s.delivery, resolver, s.server.fqdn, self._load_body, self._on_result,
            tls_plan=tls_plan, protocol_log=protocol_log, auth_plan=self.credentials.plan,
        )
        self.in_flight = 0
        self.stopping = False
        self.draining = False  # an administrator asked this server to hand its work to the others
        # (peers, my index): live servers sharing connectors with this one split the due mail
        # by message id, so that work spreads over them instead of going to whoever polls first.
        self.share: tuple[int, int] | None = None
        worker = rt.owner_prefix.rsplit("/", 1)[-1]
        self.journal = CrashJournal(s.data_dir / f"inflight-{s.server.name}-{worker}.journal")
        # Messages that were in flight at a crash are delivered one at a time, so that a
        # second crash points at the message that causes it (and only that one goes to Poison).
        self._suspects: deque[Job] = deque()
        self._suspect_running = False
        self.started_at = rt.clock()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._records: set[asyncio.Task[None]] = set()
        self._acc = RecordBatch()
        self._acc_jobs = 0
        self._acc_scheduled = False
        self._config_version = -1
        self._live: set[str] | None = None   # guids of the enabled connectors at the last load
        self._config_lock = asyncio.Lock()

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        rt = self.rt
        await self._load_config(force=True)
        await self._poison_check()
        recovered = await rt.store.messages.recover(rt.owner_prefix, rt.owner, rt.clock())
        if recovered:
            log.info("recovered %d message(s) left in flight by an earlier run", len(recovered))
        await self._heartbeat("Active")
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="claim"),
            asyncio.create_task(self._config_loop(), name="config"),
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
        ]

    async def _poison_check(self) -> None:
        rt = self.rt
        crashed = self.journal.recover()
        if not crashed:
            return
        log.warning("%d message(s) were being handled when the previous run crashed", len(crashed))
        poisoned = await rt.store.messages.mark_crashed(crashed, rt.settings.queue.poison_threshold)
        for mid in poisoned:
            try:
                info, rows = await rt.store.queues.get_message(mid)
            except MailhopError:
                continue
            log.error("message %d crashed the server %d times: moved to the Poison queue", mid, info.crash_count)
            rt.tracking.event("POISONMESSAGE", info, source="POISONMESSAGE",
                              recipients=[r.address for r in rows], recipient_status=[str(POISON_REPLY)] * len(rows))

    async def stop(self, grace: float) -> None:
        """Stop claiming; let deliveries in flight finish for ``grace``; release the rest."""
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pool.stop(grace)
        self._flush_records()
        if self._records:
            await asyncio.wait(list(self._records), timeout=30)
        rt = self.rt
        released = await rt.store.messages.release(rt.owner, rt.clock())
        if released:
            log.info("released %d recipient(s) for the next run", released)
        self.journal.close()
        with contextlib.suppress(MailhopError):
            await self._heartbeat("Stopped")

    def wake(self) -> None:
        self._wake.set()

    # --- in-memory hand-off from submission -------------------------------------------------

    def can_take(self) -> bool:
        return not (self.stopping or self.draining) and self.in_flight < self.rt.settings.queue.max_in_memory

    def hand_off(self, claim: Claim) -> bool:
        """Deliver a just-committed message whose recipients are already leased to us."""
        if self.stopping:
            return False
        self._dispatch(claim, claim.recipients)
        return True

    # --- loops ------------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        rt = self.rt
        poll = rt.settings.server.config_poll_interval
        while not self.stopping:
            self._wake.clear()
            room = rt.settings.queue.max_in_memory - self.in_flight
            claimed = 0
            if room > 0 and not self.draining:
                limit = min(room, CLAIM_BATCH)
                try:
                    now = rt.clock()
                    claims = await rt.store.messages.claim(rt.owner, now, rt.lease_until, limit, rt.my_connectors(),
                                                  share=self.share, stale_before=now - 2 * poll)
                except MailhopError as exc:
                    log.error("claiming due mail failed: %s", exc)
                    claims = []
                for claim in claims:
                    try:
                        await self._process(claim)
                    except Exception:
                        log.exception("processing message %s failed", claim.message.id)
                claimed = len(claims)
                if claimed:
                    log.debug("claimed %d message(s) (share %s)", claimed, self.share)
                if claimed >= limit:
                    continue
            timeout = poll
            with contextlib.suppress(MailhopError):
                due = await rt.store.messages.next_due(rt.my_connectors())
                if due is not None:
                    timeout = max(0.0, min(poll, due - rt.clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout + 0.01)

    async def _config_loop(self) -> None:
        while not self.stopping:
            await asyncio.sleep(self.rt.settings.server.config_poll_interval)
            try:
                await self._load_config()
            except MailhopError as exc:
                log.error("reading configuration changes failed: %s", exc)

    async def _load_config(self, force: bool = False) -> None:
        # One load at a time: two interleaved loads would both resubmit, and diff the
        # connectors against the same earlier set.
        async with self._config_lock:
            await self._load_config_now(force)

    async def _load_config_now(self, force: bool) -> None:
        rt = self.rt
        version = await rt.store.connectors.version()
        rt.queue_states = {q.queue.lower(): q for q in await rt.store.queues.states()}
        await self._follow_requested_state()
        if version == self._config_version and not force:
            return
        self._config_version = version
        connectors = await rt.store.connectors.list()
        rt.router = Router(connectors, rt.server_name)
        self.credentials.invalidate()
        live = [c.guid for c in connectors if c.enabled]
        # At start the connectors the queue names are checked; afterwards only those gone since.
        removed = None if self._live is None else sorted(self._live - set(live))
        moved = await rt.store.messages.resubmit(live, rt.clock(), removed)
        self._live = set(live)
        if not force:
            log.info("send connectors changed (version %d); %d recipient(s) resubmitted", version, moved)
        self.wake()

    async def _follow_requested_state(self) -> None:
        """Drain or resume when an administrator asks (``mailhop server drain|resume``)."""
        rt = self.rt
        servers = await rt.store.servers.list()
        self.share = self._share(servers)
        me = next((s for s in servers if s.name.lower() == rt.server_name.lower()), None)
        draining = me is not None and (me.requested_state or "").lower() == "draining"
        if draining == self.draining:
            return
        self.draining = draining
        if draining:
            # Jobs not yet started go back to the shared queues; deliveries in flight finish.
            pending = self.pool.take_pending()
            now = rt.clock()
            batch = RecordBatch([RecipientUpdate(r.id, RETRY if r.attempts else READY, next_attempt_at=now)
                                 for job in pending for r in job.claim.recipients])
            for job in pending:
                self.journal.end(job.claim.message.id)
            self._spawn_record(batch, jobs=len(pending))
            log.warning("draining: not accepting or claiming mail; %d message(s) handed back", len(pending))
        else:
            log.warning("resumed: accepting and delivering mail again")
        await self._heartbeat(self.state)

    def _share(self, servers: list[ServerInfo]) -> tuple[int, int] | None:
        rt = self.rt
        now = rt.clock()
        mine = set(rt.my_connectors())
        if not mine:
            return None
        peers = sorted({
            s.name.lower() for s in servers
            if s.state == "Active" and s.requested_state is None
            and now - s.heartbeat_at <= rt.settings.cluster.lease_timeout
            and any(c.guid in mine and c.is_source(s.name) for c in rt.router.connectors)
        } | {rt.server_name.lower()})
        return (len(peers), peers.index(rt.server_name.lower())) if len(peers) > 1 else None

    @property
    def state(self) -> str:
        return "Draining" if self.draining else "Active"

    async def _heartbeat_loop(self) -> None:
        rt = self.rt
        while not self.stopping:
            await asyncio.sleep(rt.settings.cluster.heartbeat_interval)
            try:
                await self._heartbeat(self.state)
                if await rt.store.messages.recover(rt.owner_prefix, rt.owner, rt.clock()):
                    self.wake()
            except MailhopError as exc:
                log.error("heartbeat failed: %s", exc)

    async def _heartbeat(self, state: str) -> None:
        rt = self.rt
        now = rt.clock()
        await rt.store.servers.heartbeat(
            ServerInfo(rt.server_name, rt.owner, rt.settings.server.fqdn, state, self.started_at, now),
            rt.lease_until,
        )

    # --- claimed work -----------------------------------------------------------------------------

    async def _process(self, claim: Claim) -> None:
        rt = self.rt
        now = rt.clock()
        info = claim.message
        batch = RecordBatch()
        if now >= info.expires_at:
            reports = []
            for r in claim.recipients:
                reply = expired_reply(r)
                batch.outcomes.append(RecipientUpdate(r.id, FAILED, last_error=str(reply)))
                reports.append(dsn.RecipientReport(r.address, reply))
                rt.tracking.event("FAIL", info, source="QUEUE", recipients=[r.address],
                                  recipient_status=[str(reply)], connector_id=r.queue)
            await self._notify(batch, info, claim, reports)
            await self._record(batch, jobs=0)
            return
        if info.delay_at is not None and now >= info.delay_at:
            delayed = [r for r in claim.recipients if r.attempts > 0 or r.queue == UNREACHABLE_QUEUE]
            if delayed and info.kind == NORMAL:
                reports = [dsn.RecipientReport(r.address, Reply.from_string(r.last_error or "451 4.4.0 delayed"))
                           for r in delayed]
                await self._notify(batch, info, claim, reports, delayed=True)
            batch.delay_notified.append(info.id)
            info.delay_at = None
        to_deliver: list[RecipientRow] = []
        reports = []
        for r in claim.recipients:
            route = rt.router.route(r.address, info.sender, info.size)
            p = place(rt, route, info, now)
            if p.failure is not None:
                batch.outcomes.append(_placed(r.id, FAILED, p, last_error=str(p.failure)))
                reports.append(dsn.RecipientReport(r.address, p.failure))
                rt.tracking.event("FAIL", info, source="ROUTING", recipients=[r.address],
                                  recipient_status=[str(p.failure)])
            elif route.delivery_type in (UNREACHABLE, RELAY_TO_SOURCE) or rt.is_suspended(p.queue) or p.status == RETRY:
                status = RETRY if (p.status == RETRY or r.attempts) else READY
                batch.outcomes.append(_placed(r.id, status, p, next_attempt_at=p.next_attempt_at,
                                              last_error=p.last_error))
            else:
                r.queue, r.delivery_type, r.next_hop, r.connector = p.queue, p.delivery_type, p.next_hop, p.connector
                to_deliver.append(r)
        if reports:
            await self._notify(batch, info, claim, reports)
        if batch.outcomes or batch.new_messages or batch.delay_notified:
            await self._record(batch, jobs=0)
        if to_deliver:
            self._dispatch(claim, to_deliver)

    async def _notify(self, batch: RecordBatch, info: MessageInfo, claim: Claim,
                      reports: list[dsn.RecipientReport], delayed: bool = False) -> None:
        if not dsn.should_notify(info):
            return
        body = claim.body if claim.body is not None else await self.rt.store.messages.body(info.id)
        message = self.submission.compose_ndr(info, body, reports, delayed=delayed)
        if message is not None:
            batch.new_messages.append(message)
            self.rt.tracking.event(
                "DSN", info, source="DSN", recipients=[r.address for r in reports],
                recipient_status=[str(r.reply) for r in reports],
                extra={"RelatedInternalMessageId": message.info.id, "DsnType": "delay" if delayed else "failure"},
            )

    def _dispatch(self, claim: Claim, recipients: Iterable[RecipientRow]) -> None:
        groups: dict[tuple[str, str], list[RecipientRow]] = {}
        for r in recipients:
            groups.setdefault((r.connector or "", r.next_hop.lower()), []).append(r)
        for (guid, _), rows in groups.items():
            connector = self.rt.router.by_guid.get(guid)
            if connector is None:  # deleted since it was routed: back to the categorizer
                self._spawn_record(RecordBatch([
                    RecipientUpdate(r.id, READY, queue=SUBMISSION_QUEUE, delivery_type=UNDEFINED,
                            next_hop=SUBMISSION_QUEUE, clear_connector=True) for r in rows]), jobs=0)
                continue
            self.in_flight += 1
            job = Job(Claim(claim.message, rows, claim.body), connector, rows[0].next_hop)
            if claim.message.crash_count > 0:
                self._suspects.append(job)
            else:
                self.journal.begin(claim.message.id)
                self.pool.push(job)
        self._next_suspect()

    def _next_suspect(self) -> None:
        if self._suspect_running or not self._suspects:
            return
        job = self._suspects.popleft()
        self._suspect_running = True
        self.journal.begin(job.claim.message.id)
        self.pool.push(job)

    async def _load_body(self, claim: Claim) -> bytes:
        if claim.body is None:
            claim.body = await self.rt.store.messages.body(claim.message.id)
        return claim.body

    # --- results ----------------------------------------------------------------------------------

    def _on_result(self, result: JobResult) -> None:
        rt = self.rt
        now = rt.clock()
        job = result.job
        info = job.claim.message
        self.journal.end(info.id)
        if info.crash_count > 0:
            self._suspect_running = False
            self._next_suspect()
        batch = RecordBatch()
        queue = job.claim.recipients[0].queue
        retry_until = self._queue_failed(queue, result, now) if result.hop_failure else None
        if not result.hop_failure:
            self._queue_ok(queue)
        sent, deferred, failed = [], [], []
        for r in job.claim.recipients:
            reply = result.replies[r.id]
            if reply.ok:
                batch.outcomes.append(_attempted(r, DELIVERED))
                sent.append((r, reply))
            elif reply.temporary:
                when = retry_until if retry_until is not None else now + rt.retry.message_delay()
                when = rt.retry.bounded(when, info.expires_at, info.delay_at)
                batch.outcomes.append(_attempted(r, RETRY, next_attempt_at=when, last_error=str(reply),
                                                 attempted=result.attempted))
                deferred.append((r, reply))
            else:
                batch.outcomes.append(_attempted(r, FAILED, last_error=str(reply)))
                failed.append((r, reply))
        remote = result.endpoint
        extra = {"RemoteHost": remote.host if remote else None, "TlsVersion": result.tls_version,
                 "TlsCipher": result.tls_cipher, "NextHopDomain": job.next_hop}
        for event, items in (("SEND", sent), ("DEFER", deferred), ("FAIL", failed)):
            if items:
                rt.tracking.event(event, info, source="SMTP", recipients=[r.address for r, _ in items],
                                  recipient_status=[str(reply) for _, reply in items],
                                  connector_id=job.connector.name, server_ip=remote.ip if remote else None,
                                  extra=extra)
        if failed and dsn.should_notify(info) and job.claim.body is not None:
            reports = [dsn.RecipientReport(r.address, reply, remote.host if remote else None) for r, reply in failed]
            message = self.submission.compose_ndr(info, job.claim.body, reports)
            if message is not None:
                batch.new_messages.append(message)
                rt.tracking.event("DSN", info, source="DSN", recipients=[r.address for r, _ in failed],
                                  recipient_status=[str(reply) for _, reply in failed],
                                  extra={"RelatedInternalMessageId": message.info.id, "DsnType": "failure"})
        self._spawn_record(batch, jobs=1)

    def _queue_failed(self, queue: str, result: JobResult, now: float) -> float:
        rt = self.rt
        state = rt.queue_state(queue) or QueueState(queue)
        if state.retry_until and state.retry_until > now:
            return state.retry_until  # another job of the same outage already set the schedule
        count = state.retry_count + 1
        reply = next(iter(result.replies.values()))
        new = replace(state, queue=queue, retry_count=count, retry_until=now + rt.retry.queue_delay(count),
                      first_retry_at=state.first_retry_at or now, last_retry_at=now, last_error=str(reply))
        rt.queue_states[queue.lower()] = new
        self._spawn(rt.store.queues.set_state(new))
        log.warning("queue %s in Retry until %.0f: %s", queue, new.retry_until or 0, reply)
        return new.retry_until or now

    def _queue_ok(self, queue: str) -> None:
        rt = self.rt
        state = rt.queue_state(queue)
        if state is not None and (state.retry_count or state.retry_until or state.last_error):
            new = replace(state, retry_count=0, retry_until=None, first_retry_at=None, last_error=None)
            rt.queue_states[queue.lower()] = new
            self._spawn(rt.store.queues.set_state(new))

    def _spawn(self, coro: object) -> None:
        async def run() -> None:
            try:
                await coro  # type: ignore[misc]
            except MailhopError as exc:
                log.error("store update failed: %s", exc)
        task = asyncio.create_task(run())
        self._records.add(task)
        task.add_done_callback(self._records.discard)

    def _spawn_record(self, batch: RecordBatch, jobs: int) -> None:
        """Record soon: outcomes of one turn of the event loop share one store operation."""
        acc = self._acc
        acc.outcomes += batch.outcomes
        acc.new_messages += batch.new_messages
        acc.delay_notified += batch.delay_notified
        self._acc_jobs += jobs
        if not self._acc_scheduled:
            self._acc_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_records)

    def _flush_records(self) -> None:
        self._acc_scheduled = False
        batch, jobs = self._acc, self._acc_jobs
        self._acc, self._acc_jobs = RecordBatch(), 0
        if not (batch.outcomes or batch.new_messages or batch.delay_notified or jobs):
            return
        task = asyncio.create_task(self._record(batch, jobs))
        self._records.add(task)
        task.add_done_callback(self._records.discard)

    async def _record(self, batch: RecordBatch, jobs: int) -> None:
        try:
            await self.rt.store.messages.record(batch)
        except MailhopError as exc:
            # The leases expire and the recipients are tried again: at least once, never lost.
            log.error("recording delivery outcomes failed: %s", exc)
        finally:
            self.in_flight -= jobs
        if batch.new_messages:
            self.wake()


def _placed(rid: int, status: str, p: Placement, **fields: Any) -> RecipientUpdate:
    """An outcome that also moves the recipient to where routing placed it."""
    return RecipientUpdate(rid, status, queue=p.queue, delivery_type=p.delivery_type, next_hop=p.next_hop,
                   connector=p.connector, clear_connector=p.connector is None, **fields)


def _attempted(r: RecipientRow, status: str, *, attempted: bool = True, **fields: Any) -> RecipientUpdate:
    """The outcome of a delivery attempt; the route it was attempted on is kept."""
    return RecipientUpdate(r.id, status, attempted=attempted, queue=r.queue, delivery_type=r.delivery_type,
                   next_hop=r.next_hop, connector=r.connector, **fields)


def expired_reply(r: RecipientRow) -> Reply:
    reason = f" Reason: {r.last_error}" if r.last_error else ""
    if r.queue == UNREACHABLE_QUEUE:
        return Reply(550, "4.4.7", f"QUEUE.Expired; message expired in unreachable destination queue.{reason}")
    return Reply(QUEUE_EXPIRED.code, QUEUE_EXPIRED.enhanced, f"{QUEUE_EXPIRED.text}.{reason}" if reason else QUEUE_EXPIRED.text)
