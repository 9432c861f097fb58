"""The queue's parts working together on the in-memory store, a virtual clock and a scripted next hop.

Submission, the claimer, the outcome recorder and writer, membership, the config watch,
poison handling and the delivery pool run as the server runs them (``Scheduler`` wires
them), but nothing touches a socket, a disk store or the wall clock: a five-minute
retry takes microseconds and can never lose a race against a loaded machine.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mailhop.config import Settings, from_mapping
from mailhop.errors import StoreError
from mailhop.model.connector import new_connector
from mailhop.model.ids import IdGenerator
from mailhop.model.message import ACTIVE, RETRY, MessageInfo, NewMessage, NewRecipient, RecordBatch
from mailhop.model.route import SMART_HOST
from mailhop.queue.context import Live, QueueContext, Snapshot
from mailhop.queue.ndr import NdrComposer
from mailhop.queue.retry import RetryPolicy
from mailhop.queue.scheduler import Scheduler
from mailhop.queue.submission import Submission
from mailhop.routing.router import Router
from mailhop.services.queues import QueueService
from mailhop.testing.clock import VirtualClock, settle
from mailhop.testing.nexthop import FakeEndpoint, FakeNextHop
from mailhop.testing.resolver import FakeResolver
from mailhop.testing.store import MemoryStore
from mailhop.tracking.events import Tracker, TrackingEvent

RELAY = "192.0.2.10"
HOME = "192.0.2.20"
RELAY2 = "192.0.2.11"
BODY = b"From: <alice@contoso.test>\r\nSubject: hello\r\nMessage-ID: <m@contoso.test>\r\n\r\nHi.\r\n"


class World:
    """One server worker's queue and delivery, with everything it talks to faked."""

    def __init__(self, tmp: Path, name: str = "EXCH01", store: MemoryStore | None = None,
                 clock: VirtualClock | None = None, **sections: dict[str, Any]) -> None:
        config: dict[str, Any] = {
            "server": {"name": name, "fqdn": f"{name.lower()}.contoso.test", "data_dir": str(tmp / name),
                       "config_poll_interval": "30s"},
            "queue": {"glitch_retry_count": 2, "glitch_retry_interval": "60s", "transient_retry_count": 1,
                      "transient_retry_interval": "300s", "message_retry_interval": "900s", "retry_jitter": 0,
                      "message_expiration_timeout": "2d", "delay_notification_timeout": "4h"},
            "cluster": {"lease_timeout": "60s", "heartbeat_interval": "30s"},
            "delivery": {"connection_cache_time": "5s"},
        }
        for key, value in sections.items():
            config.setdefault(key, {}).update(value)
        self.settings: Settings = from_mapping(config)
        self.clock = clock or VirtualClock()
        self.store = store or MemoryStore(self.clock)
        self.hop = FakeNextHop()
        self.events: list[TrackingEvent] = []
        owner = f"{name}/0/{random.Random(name).getrandbits(32):08x}"
        self.ids = IdGenerator(self.clock)
        ctx = QueueContext(self.settings, self.store, Tracker(self.clock, owner, [self.events.append]), self.clock,
                           self.ids, RetryPolicy(self.settings.queue, random.Random(0)), owner)
        self.ctx = ctx
        live = Live(Snapshot(Router([], name)))
        ndr = NdrComposer(ctx, live)
        self.scheduler = Scheduler(ctx, live, ndr, FakeResolver(), opener=self.hop.open)
        self.submission = Submission(ctx, live, ndr, self.scheduler)
        self.queues = QueueService(self.store, self.clock, ctx.tracker, ndr, self.scheduler.wake)

    async def connector(self, name: str, ip: str, spaces: str = "*", **values: str) -> None:
        c = new_connector({"Name": name, "AddressSpaces": spaces, "DNSRoutingEnabled": "false",
                           "SmartHosts": f"[{ip}]", **values}, self.settings.server.name)
        await self.store.connectors.create(c)

    async def submit(self, *recipients: str, sender: str = "alice@contoso.test") -> MessageInfo:
        info = self.submission.new_info(sender=sender, size=len(BODY), subject="hello",
                                        message_id="<m@contoso.test>", receive_connector="Default")
        await self.submission.submit(info, BODY, list(recipients))
        await settle()
        return info

    def ids_of(self, event_id: str) -> list[tuple[str, ...]]:
        return [e.recipients for e in self.events if e.event_id == event_id]

    async def waiting(self) -> dict[str, tuple[str, str]]:
        """Every recipient still queued: address -> (status, queue)."""
        return {r.address: (r.status, r.queue) for _, rows in await self.store.queues.messages() for r in rows}


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    w = World(tmp_path)
    yield w
    await w.scheduler.stop(0)


async def started(w: World) -> World:
    await w.scheduler.start()
    await settle()
    return w


async def test_fresh_mail_is_handed_over_in_memory_and_delivered(world: World) -> None:
    await world.connector("Relay", RELAY)
    world.hop.add(FakeEndpoint(RELAY, 25))
    await started(world)
    info = await world.submit("bob@fabrikam.test", "carol@fabrikam.test")
    [delivered] = world.hop.delivered
    assert delivered.recipients == ["bob@fabrikam.test", "carol@fabrikam.test"] and delivered.body == BODY
    assert world.ids_of("RECEIVE") == [("bob@fabrikam.test", "carol@fabrikam.test")]
    assert world.ids_of("SEND") == [("bob@fabrikam.test", "carol@fabrikam.test")]
    assert all(e.source_context == world.ctx.owner for e in world.events)
    assert await world.store.queues.messages() == []
    assert world.scheduler.in_flight == 0
    assert info.id > 0


async def test_an_outcome_the_store_could_not_take_is_written_again_never_left_active(world: World) -> None:
    """The store was unreachable when a delivery's outcome was written.  Before, the outcome was
    dropped while the heartbeat kept the worker's lease alive: the recipient stayed Active for
    ever (the fault checker's PostgreSQL restart left 5 such after every message had arrived)."""
    await world.connector("Relay", RELAY)
    world.hop.add(FakeEndpoint(RELAY, 25))
    await started(world)
    record = world.store.messages.record
    failed: list[RecordBatch] = []

    async def unreachable_twice(batch: RecordBatch) -> None:
        if len(failed) < 2:
            failed.append(batch)
            raise StoreError("cannot reach the postgresql store: connection refused")
        await record(batch)

    world.store.messages.record = unreachable_twice  # type: ignore[method-assign]
    await world.submit("bob@fabrikam.test")
    assert len(world.hop.delivered) == 1 and len(failed) == 1
    assert (await world.waiting())["bob@fabrikam.test"][0] == ACTIVE  # outcome not stored yet: still leased
    assert world.scheduler.in_flight == 1  # and counted as in flight, so claiming slows down
    await world.clock.advance(1)  # written again after 1 s: fails; then after 2 s more: stored
    assert len(failed) == 2 and (await world.waiting())["bob@fabrikam.test"][0] == ACTIVE
    await world.clock.advance(2)
    assert await world.store.queues.messages() == [] and world.scheduler.in_flight == 0
    await world.clock.advance(300)  # leases, heartbeats, retries: nothing is sent twice
    assert len(world.hop.delivered) == 1


async def test_an_unreachable_next_hop_retries_on_exchanges_schedule_then_delivers(world: World) -> None:
    await world.connector("Relay", RELAY)
    world.hop.refuse(RELAY)
    await started(world)
    start = world.clock.now()
    await world.submit("bob@fabrikam.test")
    [state] = await world.store.queues.states()
    assert (state.queue, state.retry_count, state.retry_until) == ("Relay", 1, start + 60)
    assert (await world.waiting())["bob@fabrikam.test"] == (RETRY, "Relay")
    # Glitch retries 60 s apart, then the transient one after 300 s; each failure counts.
    await world.clock.advance(59)
    assert len(world.hop.attempts) == 1  # not early
    await world.clock.advance(2)
    assert len(world.hop.attempts) == 2
    await world.clock.advance(60)
    assert len(world.hop.attempts) == 3
    [state] = await world.store.queues.states()
    assert state.retry_count == 3 and 298 < state.retry_until - world.clock.now() <= 300
    # The next hop comes back: the next retry delivers and takes the queue out of Retry.
    world.hop.add(FakeEndpoint(RELAY, 25))
    await world.clock.advance(299)
    assert world.hop.delivered == []
    await world.clock.advance(2)
    assert [d.recipients for d in world.hop.delivered] == [["bob@fabrikam.test"]]
    [state] = await world.store.queues.states()
    assert (state.retry_count, state.retry_until, state.last_error) == (0, None, None)
    assert world.ids_of("DEFER") == [("bob@fabrikam.test",)] * 3


async def test_retry_queue_delivers_at_once_though_the_scheduler_had_the_queue_in_retry(world: World) -> None:
    await world.connector("Relay", RELAY)
    world.hop.refuse(RELAY)
    await started(world)
    await world.submit("bob@fabrikam.test")
    assert (await world.waiting())["bob@fabrikam.test"] == (RETRY, "Relay")
    world.hop.add(FakeEndpoint(RELAY, 25))
    # Retry-Queue wakes the claimer, which runs before any config poll could refresh the queue states.
    assert (await world.queues.retry("Relay"))["RecipientsRetried"] == 1
    await settle()
    assert [d.recipients for d in world.hop.delivered] == [["bob@fabrikam.test"]]


async def test_a_4xx_recipient_waits_the_message_retry_interval(world: World) -> None:
    await world.connector("Relay", RELAY)
    endpoint = world.hop.add(FakeEndpoint(RELAY, 25, rcpt={"later@fabrikam.test": "451 4.7.1 greylisted"}))
    await started(world)
    await world.submit("now@fabrikam.test", "later@fabrikam.test")
    assert [d.recipients for d in world.hop.delivered] == [["now@fabrikam.test"]]
    assert await world.waiting() == {"now@fabrikam.test": ("delivered", "Relay"), "later@fabrikam.test": (RETRY, "Relay")}
    endpoint.rcpt.clear()
    await world.clock.advance(899)
    assert len(world.hop.delivered) == 1
    await world.clock.advance(2)
    assert [d.recipients for d in world.hop.delivered] == [["now@fabrikam.test"], ["later@fabrikam.test"]]
    assert await world.store.queues.messages() == []


async def test_a_4xx_recipient_is_tried_at_the_next_endpoint_in_the_same_attempt(world: World) -> None:
    await world.connector("Relay", RELAY, SmartHosts=f"[{RELAY}],[{RELAY2}]")
    first = world.hop.add(FakeEndpoint(RELAY, 25, rcpt={"later@fabrikam.test": "451 4.7.1 greylisted",
                                                        "gone@fabrikam.test": "550 5.1.1 User unknown"}))
    second = world.hop.add(FakeEndpoint(RELAY2, 25))
    await started(world)
    await world.submit("now@fabrikam.test", "later@fabrikam.test", "gone@fabrikam.test")
    def to_fabrikam(endpoint: FakeEndpoint) -> list[list[str]]:  # (the NDR for gone@ goes the same way)
        return [d.recipients for d in endpoint.delivered if d.sender]

    assert to_fabrikam(first) == [["now@fabrikam.test"]]
    assert to_fabrikam(second) == [["later@fabrikam.test"]]  # the 5xx stays final: not tried again
    assert world.ids_of("SEND")[0] == ("now@fabrikam.test", "later@fabrikam.test")  # then the NDR's
    assert world.ids_of("FAIL") == [("gone@fabrikam.test",)]
    assert all(status != RETRY for status, _ in (await world.waiting()).values())


async def test_a_4xx_recipient_at_every_endpoint_keeps_the_last_reply(world: World) -> None:
    await world.connector("Relay", RELAY, SmartHosts=f"[{RELAY}],[{RELAY2}]")
    world.hop.add(FakeEndpoint(RELAY, 25, rcpt={"later@fabrikam.test": "451 4.7.1 greylisted"}))
    world.hop.add(FakeEndpoint(RELAY2, 25, rcpt={"later@fabrikam.test": "452 4.2.2 mailbox full"}))
    await started(world)
    await world.submit("now@fabrikam.test", "later@fabrikam.test")
    assert (await world.waiting())["later@fabrikam.test"] == (RETRY, "Relay")
    [row] = [r for _, rows in await world.store.queues.messages() for r in rows if r.address == "later@fabrikam.test"]
    assert row.last_error is not None and row.last_error.startswith("452 4.2.2")
    [state] = await world.store.queues.states() or [None]
    assert state is None or not state.retry_until  # recipients were answered: the queue is not in Retry


@pytest.mark.parametrize("data_start, data", [("250 2.0.0 ok", "250 2.0.0 ok"), ("354 go ahead", "354 more?")])
async def test_a_positive_reply_that_is_not_354_to_data_or_2xx_after_it_delivers_nothing(
        world: World, data_start: str, data: str) -> None:
    await world.connector("Relay", RELAY)
    world.hop.add(FakeEndpoint(RELAY, 25, data_start=data_start, data=data))
    await started(world)
    await world.submit("bob@fabrikam.test")
    assert world.hop.delivered == [] and world.ids_of("SEND") == []
    assert (await world.waiting())["bob@fabrikam.test"] == (RETRY, "Relay")
    [row] = [r for _, rows in await world.store.queues.messages() for r in rows]
    assert row.last_error is not None and row.last_error.startswith("451 4.5.0")


async def test_an_smtputf8_message_goes_to_the_next_host_that_has_smtputf8(world: World) -> None:
    await world.connector("Relay", RELAY, SmartHosts=f"[{RELAY}],[{RELAY2}]")
    first = world.hop.add(FakeEndpoint(RELAY, 25, smtputf8=False))
    second = world.hop.add(FakeEndpoint(RELAY2, 25))
    await started(world)
    await world.submit("bjørn@fabrikam.test")
    assert first.delivered == [] and [d.recipients for d in second.delivered] == [["bjørn@fabrikam.test"]]
    assert world.ids_of("SEND") == [("bjørn@fabrikam.test",)]


async def test_an_smtputf8_message_no_host_can_take_bounces_with_5_6_7(world: World) -> None:
    await world.connector("Relay", RELAY, SmartHosts=f"[{RELAY}],[{RELAY2}]")
    first = world.hop.add(FakeEndpoint(RELAY, 25, smtputf8=False))
    world.hop.add(FakeEndpoint(RELAY2, 25, smtputf8=False))
    await started(world)
    await world.submit("bjørn@fabrikam.test")
    assert world.ids_of("FAIL") == [("bjørn@fabrikam.test",)]
    [ndr] = [d for d in first.delivered if d.sender == ""]  # the address was never sent mangled
    assert b"5.6.7" in ndr.body and "bjørn".encode() in ndr.body
    assert not [d for d in world.hop.delivered if d.sender]


async def test_a_5xx_fails_the_recipient_and_the_sender_gets_an_ndr(world: World) -> None:
    await world.connector("Relay", RELAY, spaces="fabrikam.test")
    await world.connector("Home", HOME, spaces="contoso.test")
    world.hop.add(FakeEndpoint(RELAY, 25, rcpt={"gone@fabrikam.test": "550 5.1.1 User unknown"}))
    home = world.hop.add(FakeEndpoint(HOME, 25))
    await started(world)
    await world.submit("gone@fabrikam.test")
    [ndr] = home.delivered
    assert ndr.sender == "" and ndr.recipients == ["alice@contoso.test"]
    assert b"550 5.1.1 User unknown" in ndr.body and b"Subject: Undeliverable: hello" in ndr.body
    assert world.ids_of("FAIL") == [("gone@fabrikam.test",)] and world.ids_of("DSN") == [("gone@fabrikam.test",)]
    assert await world.store.queues.messages() == []


async def test_the_delay_dsn_goes_once_and_expiry_fails_what_is_left(tmp_path: Path) -> None:
    # Polls far apart: the virtual clock then steps through two hours in a few dozen timers.
    world = World(tmp_path, queue={"delay_notification_timeout": "30m", "message_expiration_timeout": "2h"},
                  server={"config_poll_interval": "300s"}, cluster={"heartbeat_interval": "300s",
                                                                  "lease_timeout": "900s"})
    await world.connector("Relay", RELAY, spaces="fabrikam.test")
    await world.connector("Home", HOME, spaces="contoso.test")
    world.hop.refuse(RELAY)
    home = world.hop.add(FakeEndpoint(HOME, 25))
    try:
        await started(world)
        start = world.clock.now()
        await world.submit("bob@fabrikam.test")
        await world.clock.run_until(lambda: bool(home.delivered), what="the delay DSN")
        [delay] = home.delivered
        assert b"Delivery delayed:" in delay.body and b"Action: delayed" in delay.body
        assert world.clock.now() - start >= 1800  # not before delay_notification_timeout
        await world.clock.run_until(lambda: len(home.delivered) == 2, what="the expiry NDR")
        assert world.clock.now() - start >= 7200
        assert b"QUEUE.Expired" in home.delivered[1].body
        assert [e.source for e in world.events if e.event_id == "FAIL"] == ["QUEUE"]
        assert [e.extra["DsnType"] for e in world.events if e.event_id == "DSN"] == ["delay", "failure"]
        await settle()
        assert await world.store.queues.messages() == []
    finally:
        await world.scheduler.stop(0)


async def test_a_connector_change_resubmits_unreachable_mail(world: World) -> None:
    world.hop.add(FakeEndpoint(RELAY, 25))
    await started(world)
    await world.submit("bob@fabrikam.test")
    assert (await world.waiting())["bob@fabrikam.test"] == (RETRY, "Unreachable")
    await world.connector("Relay", RELAY)
    await world.clock.advance(30)  # one config poll
    assert [d.recipients for d in world.hop.delivered] == [["bob@fabrikam.test"]]
    # Deleting a connector sends its waiting mail back to routing too.
    await world.clock.advance(5)  # the cached connection is closed
    world.hop.refuse(RELAY)
    await world.submit("carol@fabrikam.test")
    assert (await world.waiting())["carol@fabrikam.test"] == (RETRY, "Relay")
    await world.store.connectors.delete("Relay")
    await world.clock.advance(30)
    assert (await world.waiting())["carol@fabrikam.test"][1] == "Unreachable"


def stored(w: World, *recipients: str, owner: str | None = None, crash_count: int = 0) -> NewMessage:
    now = w.clock.now()
    info = MessageInfo(w.ids(), "alice@contoso.test", now, len(BODY), "EXCH02", now + 86400, now + 3600,
                       crash_count=crash_count)
    rows = [NewRecipient(r, ACTIVE if owner else "ready", "Relay", SMART_HOST, f"[{RELAY}]", now,
                         connector=None, lease_owner=owner, lease_until=now + 60 if owner else None, id=w.ids())
            for r in recipients]
    return NewMessage(info, BODY, rows)


async def test_a_dead_servers_lease_expires_and_its_mail_is_taken_over(world: World) -> None:
    await world.connector("Relay", RELAY)
    world.hop.add(FakeEndpoint(RELAY, 25))
    await world.store.messages.submit([stored(world, "bob@fabrikam.test", owner="EXCH02/0/dead")])
    await started(world)
    assert world.hop.delivered == []  # a live lease of another server is left alone
    await world.clock.run_until(lambda: bool(world.hop.delivered), what="the take-over")
    assert world.clock.now() >= 1_900_000_060  # not before the lease ran out
    assert [d.recipients for d in world.hop.delivered] == [["bob@fabrikam.test"]]


async def test_a_lease_of_this_worker_without_a_job_expires_instead_of_being_kept_for_ever(world: World) -> None:
    """A commit whose answer was lost (PostgreSQL restarted during COMMIT): the message is stored,
    leased to this very worker, but the worker never got it.  The heartbeat used to push every
    lease of the worker on, this one too, so it stayed Active for ever (the fault checker's
    PostgreSQL run left three); only the leases of what the worker holds are pushed on now."""
    await world.connector("Relay", RELAY)
    world.hop.add(FakeEndpoint(RELAY, 25))
    await world.store.messages.submit([stored(world, "bob@fabrikam.test", owner=world.ctx.owner)])
    await started(world)
    await world.clock.run_until(lambda: bool(world.hop.delivered), limit=600, what="the orphaned lease recovered")
    assert world.clock.now() >= 1_900_000_060  # once its lease ran out
    assert [d.recipients for d in world.hop.delivered] == [["bob@fabrikam.test"]]
    assert await world.store.queues.messages() == []


async def test_a_message_that_crashed_the_server_twice_while_alone_goes_to_poison(world: World) -> None:
    await world.connector("Relay", RELAY)
    world.hop.add(FakeEndpoint(RELAY, 25))
    # A suspect (1) that crashed the server once already while handled alone (2).
    message = stored(world, "bob@fabrikam.test", crash_count=2)
    await world.store.messages.submit([message])
    journal = world.settings.data_dir / "inflight-EXCH01-0.journal"
    journal.parent.mkdir(parents=True)
    journal.write_text(f"A {message.info.id}\n")  # the previous run died handling it alone, again
    await started(world)
    assert world.hop.delivered == []
    assert await world.waiting() == {"bob@fabrikam.test": ("poison", "Poison")}
    [event] = [e for e in world.events if e.event_id == "POISONMESSAGE"]
    assert event.recipients == ("bob@fabrikam.test",) and event.recipient_status == (
        "550 5.3.0 Too many related errors",)


async def test_crashes_with_others_in_flight_make_suspects_never_poison(world: World) -> None:
    await world.connector("Relay", RELAY)
    world.hop.add(FakeEndpoint(RELAY, 25))
    crowd = [stored(world, f"c{i}@fabrikam.test", crash_count=1) for i in range(3)]
    fresh = stored(world, "fresh@fabrikam.test")
    await world.store.messages.submit([*crowd, fresh])
    journal = world.settings.data_dir / "inflight-EXCH01-0.journal"
    journal.parent.mkdir(parents=True)
    # Killed from outside again with all of them in flight (one was even begun alone before).
    journal.write_text(f"A {crowd[0].info.id}\nE {crowd[0].info.id}\n"
                       + "".join(f"B {m.info.id}\n" for m in [*crowd, fresh]))
    await started(world)
    assert sorted(d.recipients[0] for d in world.hop.delivered) == sorted(
        [f"c{i}@fabrikam.test" for i in range(3)] + ["fresh@fabrikam.test"])
    assert not [e for e in world.events if e.event_id == "POISONMESSAGE"]
    # The fresh one became a suspect too, and every suspect went alone.
    assert journal.read_text().split()[::2] == ["A", "E"] * 4


def assert_suspects_went_alone(journal: str) -> None:
    """In the journal: a suspect (A) begins only with nothing in flight, and nothing begins
    while a suspect is in flight."""
    active: dict[str, str] = {}
    for kind, mid in zip(journal.split()[::2], journal.split()[1::2], strict=True):
        if kind == "A":
            assert not active, (mid, active)
        elif kind == "B":
            assert "A" not in active.values(), (mid, active)
        if kind == "E":
            active.pop(mid)
        else:
            active[mid] = kind


async def test_new_deliveries_wait_while_suspects_go_alone(world: World) -> None:
    await world.connector("Relay", RELAY)
    world.hop.add(FakeEndpoint(RELAY, 25))
    suspects = [stored(world, f"s{i}@fabrikam.test", crash_count=1) for i in range(3)]
    others = [stored(world, f"n{i}@fabrikam.test") for i in range(5)]
    await world.store.messages.submit([*others[:2], *suspects, *others[2:]])  # claimed in this order
    journal = world.settings.data_dir / "inflight-EXCH01-0.journal"
    journal.parent.mkdir(parents=True)
    journal.write_text("")
    await started(world)
    await world.submit("new@fabrikam.test")
    assert len(world.hop.delivered) == 9
    text = journal.read_text()
    assert text.split()[::2].count("A") == 3
    assert_suspects_went_alone(text)


async def test_drain_hands_back_and_stops_claiming_resume_delivers(world: World) -> None:
    await world.connector("Relay", RELAY)
    await started(world)
    await world.store.servers.request_state("EXCH01", "Draining")
    await world.clock.advance(30)
    assert world.scheduler.draining and not world.scheduler.can_take()
    [me] = await world.store.servers.list()
    assert me.state == "Draining"
    world.hop.add(FakeEndpoint(RELAY, 25))
    await world.store.messages.submit([stored(world, "bob@fabrikam.test")])
    looks = 0
    next_due = world.store.messages.next_due

    async def counted(connectors: Any) -> float | None:
        nonlocal looks
        looks += 1
        return await next_due(connectors)

    world.store.messages.next_due = counted  # type: ignore[method-assign]
    await world.clock.advance(60)
    assert world.hop.delivered == []  # draining: nothing claimed
    assert looks <= 2  # and the claim loop does not spin on the mail that is due (it used to, every 10 ms)
    await world.store.servers.request_state("EXCH01", None)
    await world.clock.advance(31)
    assert not world.scheduler.draining
    assert [d.recipients for d in world.hop.delivered] == [["bob@fabrikam.test"]]


async def test_the_pool_fails_over_to_the_next_smart_host_and_reuses_connections(world: World) -> None:
    c = new_connector({"Name": "Relay", "AddressSpaces": "*", "DNSRoutingEnabled": "false",
                       "SmartHosts": f"[{RELAY}],[{HOME}]"}, "EXCH01")
    await world.store.connectors.create(c)
    world.hop.refuse(RELAY)
    second = world.hop.add(FakeEndpoint(HOME, 25))
    await started(world)
    await world.submit("a@fabrikam.test")
    await world.submit("b@fabrikam.test")
    assert [d.recipients for d in second.delivered] == [["a@fabrikam.test"], ["b@fabrikam.test"]]
    assert second.connections == 1  # the second message took the cached connection
    await world.clock.advance(5)  # connection_cache_time: the idle connection is closed
    assert world.hop.open_sessions == []
