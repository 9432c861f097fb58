"""The scheduler: wires the queue's parts to delivery and runs their loops.

Work reaches delivery two ways: a freshly received message is handed over in
memory right after its commit (its recipients were leased to this worker in the
same transaction), and everything else is claimed from the store when due
(``Claimer``), decided on (``recorder.after_claim``: expired, delay DSN, routed
again) and dispatched.  Each delivery result goes through ``recorder.after_delivery``;
NDRs are composed (``NdrComposer``), tracking events emitted, and the batch written
with the others of the same loop turn (``OutcomeWriter``).  ``ConfigWatch`` and
``Membership`` run on the poll and heartbeat intervals; ``PoisonGuard`` journals
every delivery and holds suspects back.  The store is the truth: a lease that is not
renewed (the process died) frees the recipient for this worker's next incarnation
or, with a shared store, for another server.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Iterable

from mailhop.delivery.auth import Credentials
from mailhop.delivery.body import Body, StoredBody
from mailhop.delivery.dns import Resolver
from mailhop.delivery.pool import (
    DeliveryPool,
    Job,
    JobResult,
    Opener,
    TlsOutcome,
    TlsPlanner,
    default_tls_plan,
    no_tls_outcome,
    open_session,
)
from mailhop.errors import MailhopError
from mailhop.model.message import READY, RETRY, Claim, RecipientRow, RecipientUpdate, RecordBatch
from mailhop.model.route import SUBMISSION_QUEUE, UNDEFINED
from mailhop.queue import recorder
from mailhop.queue.claimer import Claimer
from mailhop.queue.config_watch import ConfigWatch
from mailhop.queue.context import Live, QueueContext
from mailhop.queue.journal import CrashJournal
from mailhop.queue.membership import Membership
from mailhop.queue.ndr import NdrComposer
from mailhop.queue.poison import PoisonGuard
from mailhop.queue.writer import OutcomeWriter
from mailhop.sealing import Sealer
from mailhop.store.base import PART_SIZE
from mailhop.tracking import events
from mailhop.tracking.protocol import ProtocolLog

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, ctx: QueueContext, live: Live, ndr: NdrComposer, resolver: Resolver,
                 tls_plan: TlsPlanner = default_tls_plan, protocol_log: ProtocolLog | None = None,
                 opener: Opener = open_session, tls_outcome: TlsOutcome = no_tls_outcome) -> None:
        self.ctx = ctx
        self.live = live
        self.ndr = ndr
        s = ctx.settings
        self.credentials = Credentials(ctx.store.connectors, Sealer(s.server.secret_key_path), s.server.token_path)
        self.pool = DeliveryPool(
            s.delivery, resolver, s.server.fqdn, self._load_body, self._on_result,
            tls_plan=tls_plan, protocol_log=protocol_log, auth_plan=self.credentials.plan, opener=opener,
            clock=ctx.clock, tls_outcome=tls_outcome,
        )
        self.in_flight = 0
        # Recipients in memory from their claim (or hand-off) until their outcome is recorded:
        # the heartbeat keeps only their leases alive.
        self.held: set[int] = set()
        self.stopping = False
        self.membership = Membership(ctx, live, on_drain=self._hand_back, on_recovered=self.wake,
                                     held=lambda: self.held)
        self.watch = ConfigWatch(ctx, live, on_change=self._connectors_changed)
        worker = ctx.owner_prefix.rsplit("/", 1)[-1]
        self.poison = PoisonGuard(ctx, CrashJournal(s.data_dir / f"inflight-{s.server.name}-{worker}.journal"))
        self.claimer = Claimer(ctx, live, self.membership, room=lambda: s.queue.max_in_memory - self.in_flight,
                               process=self._process, hold=self._hold)
        self.writer = OutcomeWriter(ctx.store.messages, ctx.owner, self._recorded, ctx.clock)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def draining(self) -> bool:
        return self.membership.draining

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        ctx = self.ctx
        await self.watch.poll(force=True)
        await self.poison.recover()
        recovered = await ctx.store.messages.recover(ctx.owner_prefix, ctx.owner, ctx.clock.now())
        if recovered:
            log.info("recovered %d message(s) left in flight by an earlier run", len(recovered))
        await self.membership.heartbeat()
        self._tasks = [
            asyncio.create_task(self.claimer.run(lambda: self.stopping), name="claim"),
            asyncio.create_task(self._poll_loop(), name="config"),
            asyncio.create_task(self.membership.run(lambda: self.stopping), name="heartbeat"),
        ]

    async def stop(self, grace: float) -> None:
        """Stop claiming; let deliveries in flight finish for ``grace``; release the rest."""
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pool.stop(grace)
        await self.writer.drain(timeout=30)
        ctx = self.ctx
        released = await ctx.store.messages.release(ctx.owner, ctx.clock.now())
        if released:
            log.info("released %d recipient(s) for the next run", released)
        self.poison.close()
        with contextlib.suppress(MailhopError):
            await self.membership.heartbeat("Stopped")

    async def _poll_loop(self) -> None:
        ctx = self.ctx
        while not self.stopping:
            await ctx.clock.sleep(ctx.settings.server.config_poll_interval)
            try:
                await self.watch.poll()
                await self.membership.follow()
            except MailhopError as exc:
                log.error("reading configuration changes failed: %s", exc)

    def wake(self) -> None:
        self.claimer.wake()

    def _connectors_changed(self) -> None:
        self.credentials.invalidate()
        self.wake()

    def _hand_back(self) -> int:
        """Draining: jobs not yet started go back to the shared queues; deliveries in flight finish."""
        pending = self.pool.take_pending()
        now = self.ctx.clock.now()
        batch = RecordBatch([RecipientUpdate(r.id, RETRY if r.attempts else READY, next_attempt_at=now)
                             for job in pending for r in job.claim.recipients])
        for job in pending:
            self.poison.finished(job.claim.message.id, 0)
        self.writer.add(batch, jobs=len(pending))
        return len(pending)

    # --- in-memory hand-off from submission -------------------------------------------------

    def can_take(self) -> bool:
        return not (self.stopping or self.draining) and self.in_flight < self.ctx.settings.queue.max_in_memory

    def hand_off(self, claim: Claim) -> bool:
        """Deliver a just-committed message whose recipients are already leased to us."""
        if self.stopping:
            return False
        self._hold([claim])
        self._dispatch(claim, claim.recipients)
        return True

    def _hold(self, claims: Iterable[Claim]) -> None:
        self.held.update(r.id for c in claims for r in c.recipients)

    # --- claimed work -----------------------------------------------------------------------------

    async def _process(self, claim: Claim) -> None:
        decision = recorder.after_claim(claim, self.live.snapshot, self.ctx.clock.now())
        for event in decision.events:
            self.ctx.tracker.emit(event)
        batch = decision.batch
        await self._compose(decision.notices, batch)
        if batch.outcomes or batch.new_messages or batch.delay_notified:
            await self.writer.write(batch, jobs=0)
        if decision.deliver:
            self._dispatch(claim, decision.deliver)

    async def _compose(self, notices: Iterable[recorder.NdrRequest], batch: RecordBatch) -> None:
        for n in notices:
            try:
                message = await self.ndr.compose(n.info, n.reports, delayed=n.delayed, original=n.original)
            except MailhopError as exc:  # the original is gone (removed meanwhile): no NDR to send
                log.warning("no %s for message %d: %s", "DSN" if n.delayed else "NDR", n.info.id, exc)
                continue
            if message is not None:
                batch.new_messages.append(message)
                self.ctx.tracker.emit(events.dsn(n.info, [(r.address, r.reply) for r in n.reports],
                                                 message.info.id, delayed=n.delayed))

    def _dispatch(self, claim: Claim, recipients: Iterable[RecipientRow]) -> None:
        groups: dict[tuple[str, str], list[RecipientRow]] = {}
        for r in recipients:
            groups.setdefault((r.connector or "", r.next_hop.lower()), []).append(r)
        router = self.live.snapshot.router
        for (guid, _), rows in groups.items():
            connector = router.by_guid.get(guid)
            if connector is None:  # deleted since it was routed: back to the categorizer
                self.writer.add(RecordBatch([
                    RecipientUpdate(r.id, READY, queue=SUBMISSION_QUEUE, delivery_type=UNDEFINED,
                                    next_hop=SUBMISSION_QUEUE, clear_connector=True) for r in rows]), jobs=0)
                continue
            self.in_flight += 1
            job = Job(Claim(claim.message, rows, claim.body), connector, rows[0].next_hop)
            self.poison.start(claim.message.id, claim.message.crash_count, functools.partial(self.pool.push, job))

    async def _load_body(self, claim: Claim) -> Body:
        """At hand, or loaded whole when it is one part; a larger body is read while it is sent."""
        if claim.body is None:
            messages = self.ctx.store.messages
            if claim.message.size > PART_SIZE:
                return StoredBody(messages, claim.message.id, claim.message.size)
            claim.body = await messages.body(claim.message.id)
        return claim.body

    # --- results ----------------------------------------------------------------------------------

    def _on_result(self, result: JobResult) -> None:
        job = result.job
        info = job.claim.message
        self.poison.finished(info.id, info.crash_count)
        remote = result.endpoint
        decision = recorder.after_delivery(
            job.claim, job.connector.name, job.next_hop, result.replies, hop_failure=result.hop_failure,
            was_attempted=result.attempted, remote_host=remote.host if remote else None,
            remote_ip=remote.ip if remote else None, tls=(result.tls_version, result.tls_cipher, result.tls_policy),
            snapshot=self.live.snapshot, now=self.ctx.clock.now(), retry=self.ctx.retry, dsn_passed=result.dsn_passed)
        state = decision.queue_state
        if state is not None:
            self.live.publish(self.live.snapshot.with_state(state))
            self.writer.spawn(self.ctx.store.queues.set_state(state))
            if state.retry_until:
                log.warning("queue %s in Retry until %.0f: %s", state.queue, state.retry_until, state.last_error)
        for event in decision.events:
            self.ctx.tracker.emit(event)
        if decision.notices:
            self.writer.spawn(self._finish(decision.batch, decision.notices))
        else:
            self.writer.add(decision.batch, jobs=1)

    async def _finish(self, batch: RecordBatch, notices: list[recorder.NdrRequest]) -> None:
        await self._compose(notices, batch)
        self.writer.add(batch, jobs=1)

    def _recorded(self, jobs: int, new_messages: bool, recipients: list[int]) -> None:
        full = self.in_flight >= self.ctx.settings.queue.max_in_memory
        self.in_flight -= jobs
        self.held.difference_update(recipients)
        if new_messages or (full and jobs):
            self.wake()
