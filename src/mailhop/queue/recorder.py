"""The outcome recorder: pure decisions from what happened to what the store and the log get.

``after_delivery`` takes a delivery ``JobResult`` and decides, recipient by
recipient, from the reply class the SMTP client assigned (never re-guessed here):
delivered; deferred (``retry``, next attempt from the retry policy, or the queue's
Retry time when the next hop could not be reached at all); failed, with an NDR to
compose.  It also returns the queue's new Retry state (into Retry after a hop
failure, out of it after any working connection).  ``after_claim`` decides for
recipients claimed from the store: expired (``4.4.7 QUEUE.Expired``), due for the
one-time delay DSN, placed anew by routing (failed at once, waiting, or to deliver).

Neither reads a clock, the store or the network: ``now`` and the snapshot come in,
a ``Decision`` goes out (a store batch, tracking events, NDR requests), so both are
tested as plain functions.  Composing the NDRs (which may read the original from
the store) and writing the batch are the scheduler's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from mailhop.model import dsn_params
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
from mailhop.model.route import UNREACHABLE_QUEUE
from mailhop.outcome import QUEUE_EXPIRED, Reply
from mailhop.queue.context import Snapshot
from mailhop.queue.dsn import RecipientReport
from mailhop.queue.placement import deliverable, place
from mailhop.queue.retry import RetryPolicy
from mailhop.store.base import QueueState
from mailhop.tracking import events
from mailhop.tracking.events import Event


@dataclass(slots=True)
class NdrRequest:
    """An NDR (or delay DSN) to compose for some recipients of a message."""

    info: MessageInfo
    reports: list[RecipientReport]
    delayed: bool = False
    original: bytes | None = None  # the body, when it is at hand


@dataclass(slots=True)
class Decision:
    batch: RecordBatch = field(default_factory=RecordBatch)
    events: list[Event] = field(default_factory=list)
    notices: list[NdrRequest] = field(default_factory=list)
    queue_state: QueueState | None = None   # the queue's new state, to store and publish
    deliver: list[RecipientRow] = field(default_factory=list)  # claimed recipients to hand to delivery


def attempted(r: RecipientRow, status: str, *, attempted: bool = True, **fields: object) -> RecipientUpdate:
    """The outcome of a delivery attempt; the route it was attempted on is kept."""
    return RecipientUpdate(r.id, status, attempted=attempted, queue=r.queue, delivery_type=r.delivery_type,
                           next_hop=r.next_hop, connector=r.connector, **fields)  # type: ignore[arg-type]


def after_delivery(claim: Claim, connector: str, next_hop: str, replies: dict[int, Reply], *,
                   hop_failure: bool, was_attempted: bool, remote_host: str | None, remote_ip: str | None,
                   tls: tuple[str | None, str | None, str | None], snapshot: Snapshot, now: float,
                   retry: RetryPolicy, dsn_passed: bool = False) -> Decision:
    """``dsn_passed``: the next hop offered DSN and took the recipients' NOTIFY; otherwise a
    recipient that asked for NOTIFY=SUCCESS gets a "relayed" DSN from here (RFC 3461 5.2.2)."""
    info = claim.message
    decision = Decision()
    queue = claim.recipients[0].queue
    retry_until = None
    if hop_failure:
        retry_until, decision.queue_state = _queue_failed(queue, next(iter(replies.values())), snapshot, now, retry)
    else:
        decision.queue_state = _queue_ok(queue, snapshot)
    sent, deferred, failed = [], [], []
    relayed: list[RecipientReport] = []
    reports: list[RecipientReport] = []
    outcomes = decision.batch.outcomes
    for r in claim.recipients:
        reply = replies[r.id]
        if reply.ok:
            outcomes.append(attempted(r, DELIVERED))
            sent.append((r.address, reply))
            if not dsn_passed and dsn_params.wants(r.dsn, "SUCCESS"):
                relayed.append(RecipientReport(r.address, reply, remote_host, r.dsn, action="relayed"))
        elif reply.temporary:
            when = retry_until if retry_until is not None else now + retry.message_delay()
            when = retry.bounded(when, info.expires_at, info.delay_at)
            outcomes.append(attempted(r, RETRY, next_attempt_at=when, last_error=str(reply), attempted=was_attempted))
            deferred.append((r.address, reply))
        else:
            outcomes.append(attempted(r, FAILED, last_error=str(reply)))
            failed.append((r.address, reply))
            reports.append(RecipientReport(r.address, reply, remote_host, r.dsn))
    extra = {"RemoteHost": remote_host, "TlsVersion": tls[0], "TlsCipher": tls[1], "TlsPolicy": tls[2],
             "NextHopDomain": next_hop}
    if sent:
        decision.events.append(events.sent(info, sent, connector, remote_ip, extra))
    if deferred:
        decision.events.append(events.deferred(info, deferred, connector, remote_ip, extra))
    if failed:
        decision.events.append(events.failed(info, failed, "SMTP", connector, remote_ip, extra))
        decision.notices.append(NdrRequest(info, reports, original=claim.body))
    if relayed:
        decision.notices.append(NdrRequest(info, relayed, original=claim.body))
    return decision


def _queue_failed(queue: str, reply: Reply, snapshot: Snapshot, now: float,
                  retry: RetryPolicy) -> tuple[float, QueueState | None]:
    """When the queue may be tried again, and its new Retry state (None: another job set it already)."""
    state = snapshot.queue_state(queue) or QueueState(queue)
    if state.retry_until and state.retry_until > now:
        return state.retry_until, None
    count = state.retry_count + 1
    until = now + retry.queue_delay(count)
    return until, replace(state, queue=queue, retry_count=count, retry_until=until,
                          first_retry_at=state.first_retry_at or now, last_retry_at=now, last_error=str(reply))


def _queue_ok(queue: str, snapshot: Snapshot) -> QueueState | None:
    state = snapshot.queue_state(queue)
    if state is not None and (state.retry_count or state.retry_until or state.last_error):
        return replace(state, retry_count=0, retry_until=None, first_retry_at=None, last_error=None)
    return None


def expired_reply(r: RecipientRow) -> Reply:
    reason = f" Reason: {r.last_error}" if r.last_error else ""
    security = re.match(r"4\d\d 4\.7\.(\d{1,3}) ", r.last_error or "")
    if security:  # a TLS policy (DANE, MTA-STS) kept it from leaving: a 5.7.x NDR says so
        return Reply(550, f"5.7.{security.group(1)}", f"QUEUE.Expired; message expired.{reason}")
    if r.queue == UNREACHABLE_QUEUE:
        return Reply(550, "4.4.7", f"QUEUE.Expired; message expired in unreachable destination queue.{reason}")
    return Reply(QUEUE_EXPIRED.code, QUEUE_EXPIRED.enhanced,
                 f"{QUEUE_EXPIRED.text}.{reason}" if reason else QUEUE_EXPIRED.text)


def after_claim(claim: Claim, snapshot: Snapshot, now: float) -> Decision:
    info = claim.message
    decision = Decision()
    batch = decision.batch
    if now >= info.expires_at:
        reports = []
        for r in claim.recipients:
            reply = expired_reply(r)
            batch.outcomes.append(RecipientUpdate(r.id, FAILED, last_error=str(reply)))
            reports.append(RecipientReport(r.address, reply, dsn=r.dsn))
            decision.events.append(events.failed(info, [(r.address, reply)], "QUEUE", connector=r.queue))
        decision.notices.append(NdrRequest(info, reports, original=claim.body))
        return decision
    if info.delay_at is not None and now >= info.delay_at:
        delayed = [r for r in claim.recipients if r.attempts > 0 or r.queue == UNREACHABLE_QUEUE]
        if delayed and info.kind == NORMAL:
            decision.notices.append(NdrRequest(
                info, [RecipientReport(r.address, Reply.from_string(r.last_error or "451 4.4.0 delayed"), dsn=r.dsn)
                       for r in delayed], delayed=True, original=claim.body))
        batch.delay_notified.append(info.id)
        info.delay_at = None
    failures = []
    for r in claim.recipients:
        route = snapshot.router.route(r.address, info.sender, info.size)
        p = place(snapshot, route, info, now)
        if p.failure is not None:
            batch.outcomes.append(p.update(r.id, FAILED, last_error=str(p.failure)))
            failures.append(RecipientReport(r.address, p.failure, dsn=r.dsn))
            decision.events.append(events.failed(info, [(r.address, p.failure)], "ROUTING"))
        elif not deliverable(route, p, snapshot):
            status = RETRY if (p.status == RETRY or r.attempts) else READY
            batch.outcomes.append(p.update(r.id, status, next_attempt_at=p.next_attempt_at, last_error=p.last_error))
        else:
            r.queue, r.delivery_type, r.next_hop, r.connector = p.queue, p.delivery_type, p.next_hop, p.connector
            decision.deliver.append(r)
    if failures:
        decision.notices.append(NdrRequest(info, failures, original=claim.body))
    return decision
