"""The in-memory store: every repository of ``mailhop.store.base`` in dictionaries.

It passes the same contract suite as SQLite and PostgreSQL (tests/contract), so unit
tests of the scheduler, submission and delivery run on it with a virtual clock and no
threads: every call completes within one turn of the event loop, atomically (a call
that raises changed nothing).  Returned values are copies; mutating them changes
nothing stored.  Durability is the one part of the contract it does not keep.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from mailhop.clock import SYSTEM_CLOCK, Clock
from mailhop.delivery.mta_sts import CachedPolicy
from mailhop.delivery.tls_results import CountRow, DayCounts, SentReport, merge_failures
from mailhop.errors import NotFoundError
from mailhop.model.ids import ID_TIME_SHIFT
from mailhop.model.message import (
    ACTIVE,
    FINAL,
    POISON,
    READY,
    RETRY,
    SUSPENDED,
    WAITING,
    Claim,
    MessageInfo,
    NewMessage,
    RecipientRow,
    RecordBatch,
)
from mailhop.model.route import POISON_QUEUE, SUBMISSION_QUEUE, UNDEFINED, UNREACHABLE_QUEUE
from mailhop.outcome import POISON as POISON_REPLY
from mailhop.store.base import (
    QueueState,
    QueueSummary,
    Store,
)
from mailhop.testing.memory_config import (
    MemoryConnectors,
    MemoryDkimKeys,
    MemoryServers,
    MemoryTokens,
)
from mailhop.testing.memory_data import MemoryData, MemoryRecipient, free


class MemoryMessages:
    def __init__(self, data: MemoryData) -> None:
        self.d = data

    async def submit(self, messages: Sequence[NewMessage]) -> None:
        self.d.insert(messages)

    async def claim(
        self, owner: str, now: float, lease_until: float, limit: int,
        connectors: Sequence[str] | None, queues_excluded: Sequence[str] = (),
        share: tuple[int, int] | None = None, stale_before: float = 0.0,
    ) -> list[Claim]:
        suspended = {q for q, s in self.d.queue_states.items() if s.suspended}

        def eligible(r: RecipientRow) -> bool:
            if r.status not in WAITING or r.next_attempt_at > now or r.queue in suspended:
                return False
            if share is not None and share[0] > 1 and not (
                    (r.message_id >> ID_TIME_SHIFT) % share[0] == share[1] or r.next_attempt_at <= stale_before):
                return False
            if connectors is not None and not (r.connector is None or r.connector in connectors):
                return False
            return r.queue not in queues_excluded

        due = sorted((r for r in self.d.recipients.values() if eligible(r.row)),
                     key=lambda r: (r.row.next_attempt_at, r.row.id))[:limit]
        claims: dict[int, Claim] = {}
        for r in sorted(due, key=lambda r: r.row.id):
            r.row.status, r.row.lease_owner, r.lease_until = ACTIVE, owner, lease_until
            mid = r.row.message_id
            if mid not in claims:
                claims[mid] = Claim(copy.copy(self.d.messages[mid]), [])
            claims[mid].recipients.append(copy.copy(r.row))
        return list(claims.values())

    async def body(self, message_id: int) -> bytes:
        return b"".join([part async for part in self.body_parts(message_id)])

    async def body_parts(self, message_id: int) -> AsyncIterator[bytes]:
        parts = self.d.bodies.get(message_id)
        if parts is None:
            raise NotFoundError(f"message {message_id} has no body in the store")
        for part in parts:
            if message_id not in self.d.bodies:
                raise NotFoundError(f"message {message_id} was removed while its body was read")
            yield part

    async def record(self, batch: RecordBatch) -> None:
        new = [m for m in batch.new_messages if not (batch.again and m.info.id in self.d.messages)]
        self.d.check_new(new)
        for o in batch.outcomes:
            r = self.d.recipients.get(o.recipient_id)
            if r is None or (batch.owner is not None and r.row.lease_owner != batch.owner):
                continue
            row = r.row
            row.status = o.status
            if o.next_attempt_at is not None:
                row.next_attempt_at = o.next_attempt_at
            if o.last_error is not None:
                row.last_error = o.last_error
            row.attempts += int(o.attempted)
            row.lease_owner, r.lease_until = None, None
            if o.queue is not None:
                row.queue = o.queue
            row.connector = None if o.clear_connector else (o.connector if o.connector is not None else row.connector)
            if o.delivery_type is not None:
                row.delivery_type = o.delivery_type
            if o.next_hop is not None:
                row.next_hop = o.next_hop
        for mid in batch.delay_notified:
            if mid in self.d.messages:
                self.d.messages[mid].delay_at = None
        if new:
            self.d.insert(new)
        self.d.delete_done([o.recipient_id for o in batch.outcomes if o.status in FINAL])

    async def release(self, owner: str, now: float) -> int:
        mine = [r for r in self.d.recipients.values() if r.row.status == ACTIVE and r.row.lease_owner == owner]
        for r in mine:
            free(r, now)
        return len(mine)

    async def recover(self, owner_prefix: str, incarnation: str, now: float) -> list[int]:
        def dead(r: MemoryRecipient) -> bool:
            owner = r.row.lease_owner or ""
            return r.row.status == ACTIVE and (
                (owner.startswith(owner_prefix + "/") and owner != incarnation)
                or (r.lease_until is not None and r.lease_until < now))

        freed = [r for r in self.d.recipients.values() if dead(r)]
        for r in freed:
            free(r, now)
        return list(dict.fromkeys(r.row.message_id for r in freed))

    async def resubmit(self, live_connectors: Sequence[str], now: float,
                       removed: Sequence[str] | None = None) -> int:
        live = set(live_connectors)
        moved = 0
        for r in self.d.recipients.values():
            row = r.row
            if row.status not in WAITING:
                continue
            unreachable = row.queue == UNREACHABLE_QUEUE and row.connector is None
            gone = bool(row.connector) and (row.connector not in live if removed is None else row.connector in removed)
            if unreachable or gone:
                row.queue, row.connector, row.delivery_type, row.next_hop = SUBMISSION_QUEUE, None, UNDEFINED, SUBMISSION_QUEUE
                row.next_attempt_at = now
                moved += 1
        return moved

    async def next_due(self, connectors: Sequence[str] | None) -> float | None:
        times = [r.row.next_attempt_at for r in self.d.recipients.values() if r.row.status in WAITING
                 and (connectors is None or r.row.connector is None or r.row.connector in connectors)]
        return min(times) if times else None

    async def mark_suspect(self, message_ids: Sequence[int]) -> None:
        for mid in message_ids:
            info = self.d.messages.get(mid)
            if info is not None and info.crash_count == 0:
                info.crash_count = 1

    async def mark_crashed(self, message_ids: Sequence[int], threshold: int) -> list[int]:
        poisoned = []
        for mid in message_ids:
            info = self.d.messages.get(mid)
            if info is None:
                continue
            info.crash_count += 1
            if info.crash_count >= threshold:
                poisoned.append(mid)
        for r in self.d.recipients.values():
            if r.row.message_id in poisoned and r.row.status not in FINAL:
                r.row.status, r.row.queue, r.row.delivery_type, r.row.next_hop = POISON, POISON_QUEUE, UNDEFINED, POISON_QUEUE
                r.row.lease_owner, r.lease_until, r.row.last_error = None, None, str(POISON_REPLY)
        return poisoned


class MemoryQueues:
    def __init__(self, data: MemoryData) -> None:
        self.d = data

    async def states(self) -> list[QueueState]:
        return list(self.d.queue_states.values())

    async def set_state(self, state: QueueState) -> None:
        self.d.queue_states[state.queue] = state

    async def summary(self) -> list[QueueSummary]:
        by_queue: dict[str, list[RecipientRow]] = {}
        for r in self.d.recipients.values():
            if r.row.status not in FINAL:
                by_queue.setdefault(r.row.queue, []).append(r.row)
        out = []
        for queue in sorted(by_queue):
            rows = by_queue[queue]
            waiting = [r.next_attempt_at for r in rows if r.status in WAITING]
            errors = [r.last_error for r in rows if r.last_error is not None]
            connectors = [r.connector for r in rows if r.connector is not None]
            out.append(QueueSummary(queue, max(r.delivery_type for r in rows), max(r.next_hop for r in rows),
                                    max(connectors) if connectors else None, len({r.message_id for r in rows}),
                                    sum(1 for r in rows if r.status == ACTIVE), min(waiting) if waiting else None,
                                    max(errors) if errors else None))
        return out

    async def messages(self, queue: str | None = None, limit: int = 1000,
                       after: int = 0) -> list[tuple[MessageInfo, list[RecipientRow]]]:
        if queue is None:
            ids = sorted(i for i in self.d.messages if i > after)[:limit]
        else:
            ids = sorted({r.row.message_id for r in self.d.recipients.values()
                          if r.row.queue.lower() == queue.lower() and r.row.message_id > after})[:limit]
        return [(copy.copy(self.d.messages[i]), self.d.rows_of(i)) for i in ids if i in self.d.messages]

    async def get_message(self, message_id: int) -> tuple[MessageInfo, list[RecipientRow]]:
        self._require(message_id)
        return copy.copy(self.d.messages[message_id]), self.d.rows_of(message_id)

    async def retry(self, queue: str, now: float) -> int:
        for name, state in list(self.d.queue_states.items()):
            if name.lower() == queue.lower():
                self.d.queue_states[name] = dataclasses.replace(state, retry_until=None)
        count = 0
        for r in self.d.recipients.values():
            if r.row.queue.lower() == queue.lower() and r.row.status in WAITING:
                r.row.next_attempt_at = now
                count += 1
        return count

    def _require(self, message_id: int) -> None:
        if message_id not in self.d.messages:
            raise NotFoundError(f"The message {message_id} was not found in any queue")

    async def suspend_message(self, message_id: int) -> int:
        self._require(message_id)
        rows = [r.row for r in self.d.recipients.values() if r.row.message_id == message_id and r.row.status in WAITING]
        for row in rows:
            row.status = SUSPENDED
        return len(rows)

    async def resume_message(self, message_id: int, now: float) -> int:
        self._require(message_id)
        rows = [r.row for r in self.d.recipients.values()
                if r.row.message_id == message_id and r.row.status in (SUSPENDED, POISON)]
        if any(row.status == POISON for row in rows):
            self.d.messages[message_id].crash_count = 0
        for row in rows:
            if row.status == POISON:
                row.queue, row.delivery_type, row.next_hop, row.connector = (
                    SUBMISSION_QUEUE, UNDEFINED, SUBMISSION_QUEUE, None)
            row.status = RETRY if row.attempts else READY
            row.next_attempt_at = now
        return len(rows)

    async def remove_message(self, message_id: int, ndr: NewMessage | None = None) -> None:
        self._require(message_id)
        if ndr is not None:
            self.d.check_new([ndr])
        self.d.delete_message(message_id)
        if ndr is not None:
            self.d.insert([ndr])


class MemoryStsCache:
    def __init__(self) -> None:
        self.policies: dict[str, CachedPolicy] = {}

    async def get(self, domain: str) -> CachedPolicy | None:
        return self.policies.get(domain.lower())

    async def put(self, policy: CachedPolicy) -> None:
        self.policies[policy.domain.lower()] = policy

    async def list(self) -> list[CachedPolicy]:
        return [self.policies[d] for d in sorted(self.policies)]


class MemoryTlsReports:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, str], tuple[int, list[dict[str, Any]]]] = {}
        self.taken: dict[tuple[str, str], SentReport] = {}

    async def add(self, rows: Sequence[CountRow]) -> None:
        for r in rows:
            key = (r.day, r.key.domain, r.policy_json)
            success, failures = self.rows.get(key, (0, []))
            self.rows[key] = (success + r.success, merge_failures(failures, r.failures_json()))

    async def counts(self, day: str | None = None, domain: str | None = None) -> list[DayCounts]:
        out: dict[tuple[str, str], DayCounts] = {}
        for (d, dom, policy), (success, failures) in sorted(self.rows.items()):
            if (day is None or d == day) and (domain is None or dom == domain.lower()):
                out.setdefault((d, dom), DayCounts(d, dom)).policies.append((json.loads(policy), success, failures))
        return list(out.values())

    async def claim(self, report: SentReport) -> bool:
        if (report.day, report.domain) in self.taken:
            return False
        self.taken[(report.day, report.domain)] = report
        return True

    async def update_sent(self, report: SentReport) -> None:
        self.taken[(report.day, report.domain)] = report

    async def prune(self, before_day: str) -> None:
        self.rows = {k: v for k, v in self.rows.items() if k[0] >= before_day}
        self.taken = {k: v for k, v in self.taken.items() if k[0] >= before_day}

    async def sent(self) -> list[SentReport]:
        return [self.taken[k] for k in sorted(self.taken)]


class MemoryStore:
    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        data = MemoryData()
        self.connectors = MemoryConnectors(data, clock)
        self.messages = MemoryMessages(data)
        self.queues = MemoryQueues(data)
        self.servers = MemoryServers(data)
        self.tokens = MemoryTokens(data, clock)
        self.dkim = MemoryDkimKeys(data, clock)
        self.mta_sts = MemoryStsCache()
        self.tls_reports = MemoryTlsReports()
        self.data = data  # for tests that plant what a later release would refuse

    async def close(self) -> None:
        return None


def _conforms(store: MemoryStore) -> Store:  # mypy checks here that MemoryStore keeps the protocol
    return store
