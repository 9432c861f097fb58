"""The Store contract, run against every implementation (one suite, many stores)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mailhop.delivery.mta_sts import CachedPolicy
from mailhop.delivery.tls_results import CountRow, Failure, PolicyKey, SentReport
from mailhop.errors import ConflictError, NotFoundError, ValidationError
from mailhop.model.connector import new_connector, update_connector
from mailhop.model.dkim import ED25519, RSA, DkimConfig, PublicKey
from mailhop.model.ids import IdGenerator
from mailhop.model.message import (
    ACTIVE,
    DELIVERED,
    FAILED,
    READY,
    RETRY,
    MessageInfo,
    NewMessage,
    NewRecipient,
    RecipientUpdate,
    RecordBatch,
)
from mailhop.store import open_url
from mailhop.store.base import PART_SIZE, QueueState, ServerInfo, Store
from mailhop.testing.clock import VirtualClock
from mailhop.testing.store import MemoryStore
from tests.support.pg import PostgresServer

NOW = 1_900_000_000.0


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        return server.database()
    if request.param == "memory":
        return "memory"
    return f"sqlite:{tmp_path / 'store' / 'mailhop.db'}"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    s: Store = MemoryStore(VirtualClock()) if store_url == "memory" else await open_url(store_url, "")
    yield s
    await s.close()


ids = IdGenerator(VirtualClock())


def message(*recipients: NewRecipient, sender: str = "alice@contoso.test", body: bytes = b"Subject: t\r\n\r\nhi\r\n",
            delay_at: float | None = NOW + 3600) -> NewMessage:
    info = MessageInfo(id=ids(), sender=sender, received_at=NOW, size=len(body), origin_server="EXCH01",
                       expires_at=NOW + 86400, delay_at=delay_at, subject="t")
    return NewMessage(info, body, list(recipients))


def rcpt(address: str, status: str = READY, queue: str = "Smarthost", when: float = NOW,
         connector: str | None = "guid-1", owner: str | None = None) -> NewRecipient:
    return NewRecipient(address, status, queue, "SmartHostConnectorDelivery", "smtp.contoso.test", when,
                        connector=connector, lease_owner=owner, lease_until=NOW + 60 if owner else None, id=ids())


async def test_submit_is_durable_across_reopen(store: Store, store_url: str) -> None:
    if store_url == "memory":
        pytest.skip("the in-memory store keeps everything but durability")
    m = message(rcpt("bob@fabrikam.test"), body=b"Subject: x\r\n\r\n" + bytes(range(256)) * 100)
    await store.messages.submit([m])
    await store.close()
    reopened = await open_url(store_url, "")
    try:
        assert await reopened.messages.body(m.info.id) == m.body
        listed = await reopened.queues.messages()
        assert [info.id for info, _ in listed] == [m.info.id]
        assert [r.address for r in listed[0][1]] == ["bob@fabrikam.test"]
    finally:
        await reopened.close()


async def test_submit_is_atomic(store: Store) -> None:
    first = message(rcpt("a@x.test"))
    clash = message(rcpt("b@x.test"))
    clash.info.id = first.info.id
    with pytest.raises(ConflictError):
        await store.messages.submit([message(rcpt("c@x.test")), first, clash])
    assert await store.queues.messages() == []


async def test_claim_leases_only_due_recipients_once(store: Store) -> None:
    due = message(rcpt("due@x.test"), rcpt("later@x.test", RETRY, when=NOW + 600))
    await store.messages.submit([due])
    claims = await store.messages.claim("EXCH01/a", NOW, NOW + 60, 100, None)
    assert [[r.address for r in c.recipients] for c in claims] == [["due@x.test"]]
    assert claims[0].recipients[0].status == ACTIVE
    assert claims[0].message.sender == "alice@contoso.test"
    assert await store.messages.claim("EXCH02/b", NOW, NOW + 60, 100, None) == []
    later = await store.messages.claim("EXCH02/b", NOW + 601, NOW + 661, 100, None)
    assert [r.address for c in later for r in c.recipients] == ["later@x.test"]


async def test_claim_honours_connector_filter_and_suspended_queues(store: Store) -> None:
    await store.messages.submit([message(rcpt("mine@x.test", connector="g-mine", queue="Q1"),
                                rcpt("other@x.test", connector="g-other", queue="Q2"),
                                rcpt("unrouted@x.test", connector=None, queue="Submission"),
                                rcpt("held@x.test", connector="g-mine", queue="Held"))])
    await store.queues.set_state(QueueState("Held", suspended=True))
    claims = await store.messages.claim("EXCH01/a", NOW, NOW + 60, 100, ["g-mine"])
    assert sorted(r.address for c in claims for r in c.recipients) == ["mine@x.test", "unrouted@x.test"]


async def test_record_deletes_finished_messages_only(store: Store) -> None:
    m = message(rcpt("a@x.test"), rcpt("b@x.test"))
    await store.messages.submit([m])
    claim = (await store.messages.claim("S/1", NOW, NOW + 60, 10, None))[0]
    a, b = claim.recipients
    await store.messages.record(RecordBatch([RecipientUpdate(a.id, DELIVERED, attempted=True),
                                    RecipientUpdate(b.id, RETRY, next_attempt_at=NOW + 300, last_error="451 4.4.0 x", attempted=True)]))
    rows = (await store.queues.messages())[0][1]
    assert {r.address: (r.status, r.attempts, r.last_error) for r in rows} == {
        "a@x.test": (DELIVERED, 1, None), "b@x.test": (RETRY, 1, "451 4.4.0 x")}
    claim = (await store.messages.claim("S/1", NOW + 300, NOW + 360, 10, None))[0]
    ndr = message(rcpt("alice@contoso.test"), sender="")
    await store.messages.record(RecordBatch([RecipientUpdate(claim.recipients[0].id, FAILED, last_error="550 5.1.1 no")], [ndr]))
    remaining = await store.queues.messages()
    assert [info.id for info, _ in remaining] == [ndr.info.id]
    with pytest.raises(NotFoundError):
        await store.messages.body(m.info.id)


async def test_a_batch_written_again_after_a_lost_answer_stores_its_new_messages_once(store: Store) -> None:
    """The first write committed but its answer was lost (the connection dropped): the writer
    writes the batch again, marked ``again``; the NDR in it must not conflict or be doubled."""
    await store.messages.submit([message(rcpt("a@x.test"))])
    [r] = (await store.messages.claim("S/1", NOW, NOW + 60, 10, None))[0].recipients
    ndr = message(rcpt("alice@contoso.test"), sender="")
    batch = RecordBatch([RecipientUpdate(r.id, FAILED, last_error="550 5.1.1 no")], [ndr], owner="S/1")
    await store.messages.record(batch)
    with pytest.raises(ConflictError):
        await store.messages.record(batch)  # not marked: the primary key says no
    batch.again = True
    await store.messages.record(batch)
    assert [info.id for info, _ in await store.queues.messages()] == [ndr.info.id]


async def test_only_the_current_lease_owner_records_an_outcome(store: Store) -> None:
    await store.messages.submit([message(rcpt("a@x.test"))])
    [stale] = (await store.messages.claim("EXCH01/0/slow", NOW, NOW + 60, 10, None))[0].recipients
    # EXCH01 stalls past its lease; EXCH02 takes the recipient over and delivers it.
    assert await store.messages.recover("EXCH02/0", "EXCH02/0/live", NOW + 61)
    [fresh] = (await store.messages.claim("EXCH02/0/live", NOW + 61, NOW + 121, 10, None))[0].recipients
    await store.messages.record(RecordBatch([RecipientUpdate(stale.id, RETRY, next_attempt_at=NOW + 999,
                                                             last_error="451 4.4.0 late")], owner="EXCH01/0/slow"))
    row = (await store.queues.messages())[0][1][0]
    assert (row.status, row.lease_owner, row.last_error) == (ACTIVE, "EXCH02/0/live", None)  # untouched
    await store.messages.record(RecordBatch([RecipientUpdate(fresh.id, DELIVERED, attempted=True)],
                                            owner="EXCH02/0/live"))
    assert await store.queues.messages() == []


async def test_record_moves_recipient_to_new_route(store: Store) -> None:
    await store.messages.submit([message(rcpt("a@x.test", connector=None, queue="Submission"))])
    r = (await store.messages.claim("S/1", NOW, NOW + 60, 10, None))[0].recipients[0]
    await store.messages.record(RecordBatch([RecipientUpdate(r.id, READY, queue="fabrikam.test", connector="g2",
                                            delivery_type="DnsConnectorDelivery", next_hop="fabrikam.test")]))
    row = (await store.queues.messages())[0][1][0]
    assert (row.queue, row.connector, row.delivery_type, row.status) == ("fabrikam.test", "g2", "DnsConnectorDelivery", READY)
    await store.messages.record(RecordBatch([RecipientUpdate(r.id, RETRY, queue="Unreachable", clear_connector=True)]))
    row = (await store.queues.messages())[0][1][0]
    assert (row.queue, row.connector) == ("Unreachable", None)


async def test_release_and_recover_free_leases(store: Store) -> None:
    await store.messages.submit([message(rcpt("a@x.test", ACTIVE, owner="EXCH01/old")),
                        message(rcpt("b@x.test", ACTIVE, owner="EXCH02/live"))])
    # A new incarnation of EXCH01 frees its dead predecessor's lease, not EXCH02's live one.
    freed = await store.messages.recover("EXCH01", "EXCH01/new", NOW)
    assert len(freed) == 1
    claims = await store.messages.claim("EXCH01/new", NOW, NOW + 60, 10, None)
    assert [r.address for c in claims for r in c.recipients] == ["a@x.test"]
    # An expired lease is free for anyone.
    assert len(await store.messages.recover("EXCH03", "EXCH03/x", NOW + 61)) == 2
    assert await store.messages.release("EXCH01/new", NOW) == 0  # recover already freed it
    claims = await store.messages.claim("EXCH03/x", NOW + 61, NOW + 121, 10, None)
    assert sorted(r.address for c in claims for r in c.recipients) == ["a@x.test", "b@x.test"]
    assert await store.messages.release("EXCH03/x", NOW + 61) == 2


async def test_heartbeat_extends_leases(store: Store) -> None:
    await store.messages.submit([message(rcpt("a@x.test", ACTIVE, owner="EXCH01/i1"))])
    await store.servers.heartbeat(ServerInfo("EXCH01", "EXCH01/i1", "exch01.test", "Active", NOW, NOW), NOW + 600)
    assert await store.messages.recover("EXCH02", "EXCH02/i", NOW + 300) == []
    servers = await store.servers.list()
    assert [(s.name, s.state) for s in servers] == [("EXCH01", "Active")]


async def test_heartbeat_extends_only_the_leases_the_worker_holds(store: Store) -> None:
    held, orphan = rcpt("held@x.test", ACTIVE, owner="EXCH01/i1"), rcpt("orphan@x.test", ACTIVE, owner="EXCH01/i1")
    kept = message(held)
    lost = message(orphan)
    await store.messages.submit([kept, lost])
    await store.servers.heartbeat(ServerInfo("EXCH01", "EXCH01/i1", "exch01.test", "Active", NOW, NOW), NOW + 600,
                                  held={held.id})
    # Past the first lease (NOW + 60): the orphan's ran out and is recovered, the held one is not.
    assert await store.messages.recover("EXCH02", "EXCH02/i", NOW + 300) == [lost.info.id]


async def test_resubmit_sends_unreachable_and_orphaned_recipients_to_submission(store: Store) -> None:
    await store.messages.submit([message(rcpt("u@x.test", RETRY, queue="Unreachable", connector=None, when=NOW + 999),
                                rcpt("gone@x.test", connector="deleted"),
                                rcpt("kept@x.test", connector="live"))])
    assert await store.messages.resubmit(["live"], NOW) == 2
    rows = {r.address: r for r in (await store.queues.messages())[0][1]}
    assert rows["u@x.test"].queue == "Submission" and rows["u@x.test"].next_attempt_at == NOW
    assert rows["gone@x.test"].connector is None
    assert rows["kept@x.test"].connector == "live"


async def test_resubmit_of_removed_connectors_touches_only_theirs(store: Store) -> None:
    await store.messages.submit([message(rcpt("u@x.test", RETRY, queue="Unreachable", connector=None, when=NOW + 999),
                                rcpt("gone@x.test", connector="removed"),
                                rcpt("unknown@x.test", connector="not-live-but-not-named"),
                                rcpt("kept@x.test", connector="live"))])
    assert await store.messages.resubmit(["live"], NOW, removed=["removed"]) == 2
    rows = {r.address: r for r in (await store.queues.messages())[0][1]}
    assert rows["u@x.test"].queue == "Submission"
    assert rows["gone@x.test"].connector is None and rows["gone@x.test"].queue == "Submission"
    assert rows["unknown@x.test"].connector == "not-live-but-not-named"
    assert rows["kept@x.test"].connector == "live"
    assert await store.messages.resubmit(["live"], NOW, removed=[]) == 0


async def test_next_due(store: Store) -> None:
    assert await store.messages.next_due(None) is None
    await store.messages.submit([message(rcpt("a@x.test", RETRY, when=NOW + 50), rcpt("b@x.test", RETRY, when=NOW + 20))])
    assert await store.messages.next_due(None) == NOW + 20
    assert await store.messages.next_due(["other"]) is None


async def test_delay_notified_clears_delay_time(store: Store) -> None:
    m = message(rcpt("a@x.test"))
    await store.messages.submit([m])
    await store.messages.record(RecordBatch(delay_notified=[m.info.id]))
    assert (await store.queues.messages())[0][0].delay_at is None


async def test_connectors_crud_and_config_version(store: Store) -> None:
    v0 = await store.connectors.version()
    c = new_connector({"Name": "To Internet", "AddressSpaces": "*"}, "EXCH01")
    await store.connectors.create(c, secret="s3cret")
    assert await store.connectors.version() > v0
    with pytest.raises(ConflictError):
        await store.connectors.create(new_connector({"Name": "to internet", "AddressSpaces": "*"}, "EXCH01"))
    got = await store.connectors.get("TO INTERNET")
    assert got == c
    assert await store.connectors.secret(c.guid) == "s3cret"
    v1 = await store.connectors.version()
    updated = await store.connectors.update("To Internet", lambda x: update_connector(x, {"Enabled": "false"}))
    assert updated.enabled is False and (await store.connectors.get(c.guid)).enabled is False
    assert await store.connectors.version() > v1
    assert await store.connectors.secret(c.guid) == "s3cret"
    await store.connectors.create(new_connector({"Name": "Other", "AddressSpaces": "x.test"}, "EXCH01"))
    with pytest.raises(ConflictError):
        await store.connectors.update("Other", lambda x: update_connector(x, {"Name": "To Internet"}))
    assert await store.connectors.delete("To Internet") == "To Internet"
    assert [x.name for x in await store.connectors.list()] == ["Other"]
    with pytest.raises(NotFoundError):
        await store.connectors.get("To Internet")
    with pytest.raises(NotFoundError):
        await store.connectors.delete("To Internet")


async def test_queue_state_round_trip(store: Store) -> None:
    state = QueueState("fabrikam.test", suspended=False, retry_until=NOW + 60, retry_count=3,
                       first_retry_at=NOW - 100, last_retry_at=NOW, last_error="451 4.4.0 down")
    await store.queues.set_state(state)
    assert await store.queues.states() == [state]
    await store.queues.set_state(QueueState("fabrikam.test", suspended=True))
    assert (await store.queues.states())[0].suspended is True


async def test_many_concurrent_submits_all_commit(store: Store) -> None:
    import asyncio

    messages = [message(rcpt(f"r{i}@x.test")) for i in range(300)]
    await asyncio.gather(*(store.messages.submit([m]) for m in messages))
    assert len(await store.queues.messages(limit=1000)) == 300


class Spooled:
    """A body as the receive side hands over a large one: read in parts from its spool."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def parts(self, part_size: int) -> Iterator[bytes]:
        for start in range(0, len(self.data), part_size):
            yield self.data[start:start + part_size]


async def test_large_bodies_are_stored_and_read_in_parts(store: Store) -> None:
    data = b"Subject: big\r\n\r\n" + bytes(range(256)) * (PART_SIZE // 256 * 2 + 17)
    m = message(rcpt("bob@fabrikam.test"))
    m.body = Spooled(data)
    small = message(rcpt("carol@fabrikam.test"))
    await store.messages.submit([m, small])
    parts = [p async for p in store.messages.body_parts(m.info.id)]
    assert len(parts) == 3 and all(len(p) <= PART_SIZE for p in parts)
    assert b"".join(parts) == data == await store.messages.body(m.info.id)
    assert [p async for p in store.messages.body_parts(small.info.id)] == [small.body]
    reader = store.messages.body_parts(m.info.id)
    assert await anext(reader) == parts[0]
    await store.queues.remove_message(m.info.id)
    with pytest.raises(NotFoundError):  # never a truncated body
        await anext(reader)
    with pytest.raises(NotFoundError):
        await store.messages.body(m.info.id)


async def plant(store: Store, guid: str, name: str, data: str) -> None:
    """Write a connector row as a later release (or a hand edit) might have left it."""
    if isinstance(store, MemoryStore):
        store.data.connectors[guid] = {"name": name, "data": data, "secret": None}
        return
    engine = store.engine  # type: ignore[attr-defined]
    await engine.write(lambda conn: conn.execute(
        "INSERT INTO send_connectors (guid, name, data, secret, changed_at) VALUES (?,?,?,?,?)",
        (guid, name, data, None, NOW)))


async def test_a_connector_that_no_longer_validates_is_quarantined_not_fatal(store: Store) -> None:
    good = new_connector({"Name": "Good", "AddressSpaces": "*"}, "EXCH01")
    await store.connectors.create(good)
    # DNS routing with smart hosts: refused by validation, as a tightened rule would refuse it.
    await plant(store, "guid-bad", "Bad", json.dumps({"Name": "Bad", "AddressSpaces": ["smtp:*;1"],
                                                      "SmartHosts": ["relay.test"], "DNSRoutingEnabled": True,
                                                      "SourceTransportServers": ["EXCH01"]}))
    await plant(store, "guid-broken", "Broken", "{not json")
    loaded = await store.connectors.load()
    assert [c.name for c in loaded.valid] == ["Good"]
    assert [(q.name, q.guid) for q in loaded.quarantined] == [("Bad", "guid-bad"), ("Broken", "guid-broken")]
    assert "SmartHosts" in loaded.quarantined[0].reason
    assert [c.name for c in await store.connectors.list()] == ["Good"]
    with pytest.raises(ValidationError, match="quarantined"):
        await store.connectors.get("Bad")
    repaired = await store.connectors.update("Bad", lambda c: update_connector(c, {"DNSRoutingEnabled": "false"}))
    assert repaired.smart_hosts and not repaired.dns_routing_enabled
    assert sorted(c.name for c in await store.connectors.list()) == ["Bad", "Good"]
    with pytest.raises(ValidationError, match="quarantined"):
        await store.connectors.update("Broken", lambda c: c)
    assert await store.connectors.delete("broken") == "Broken"
    assert (await store.connectors.load()).quarantined == ()


async def test_queue_views_and_actions(store: Store) -> None:
    m = message(rcpt("a@x.test", queue="fabrikam.test", connector="g1"),
                rcpt("b@x.test", RETRY, queue="fabrikam.test", connector="g1", when=NOW + 900))
    other = message(rcpt("c@x.test", queue="Unreachable", connector=None))
    await store.messages.submit([m, other])
    summary = {q.queue: q for q in await store.queues.summary()}
    assert (summary["fabrikam.test"].message_count, summary["fabrikam.test"].next_attempt_at) == (1, NOW)
    assert summary["fabrikam.test"].connector == "g1" and summary["Unreachable"].connector is None
    assert [info.id for info, _ in await store.queues.messages("FABRIKAM.test")] == [m.info.id]
    info, rows = await store.queues.get_message(m.info.id)
    assert info.id == m.info.id and [r.address for r in rows] == ["a@x.test", "b@x.test"]
    with pytest.raises(NotFoundError):
        await store.queues.get_message(12345)
    await store.queues.set_state(QueueState("fabrikam.test", retry_until=NOW + 600, retry_count=2))
    assert await store.queues.retry("Fabrikam.Test", NOW + 10) == 2
    assert (await store.queues.states())[0].retry_until is None
    assert {r.next_attempt_at for r in (await store.queues.get_message(m.info.id))[1]} == {NOW + 10}
    assert await store.queues.suspend_message(m.info.id) == 2
    assert await store.messages.claim("S/1", NOW + 1000, NOW + 1060, 10, None, queues_excluded=["Unreachable"]) == []
    assert await store.queues.resume_message(m.info.id, NOW + 20) == 2
    with pytest.raises(NotFoundError):
        await store.queues.suspend_message(12345)
    ndr = message(rcpt("alice@contoso.test"), sender="")
    await store.queues.remove_message(m.info.id, ndr)
    assert sorted(info.id for info, _ in await store.queues.messages()) == sorted([ndr.info.id, other.info.id])
    with pytest.raises(NotFoundError):
        await store.queues.remove_message(m.info.id)


async def test_poison_counts_crashes_and_resume_sends_the_message_back_to_routing(store: Store) -> None:
    m = message(rcpt("a@x.test", queue="fabrikam.test", connector="g1"))
    await store.messages.submit([m])
    await store.messages.mark_suspect([m.info.id, 999])
    await store.messages.mark_suspect([m.info.id])  # a suspect already: no crash counted
    assert (await store.queues.get_message(m.info.id))[0].crash_count == 1
    assert await store.messages.mark_crashed([m.info.id, 999], threshold=2) == [m.info.id]
    info, rows = await store.queues.get_message(m.info.id)
    assert info.crash_count == 2
    assert [(r.status, r.queue, r.last_error) for r in rows] == [("poison", "Poison", "550 5.3.0 Too many related errors")]
    assert await store.messages.claim("S/1", NOW + 9999, NOW + 99999, 10, None) == []
    assert await store.queues.resume_message(m.info.id, NOW + 5) == 1
    info, rows = await store.queues.get_message(m.info.id)
    assert info.crash_count == 0
    assert [(r.status, r.queue, r.connector, r.next_attempt_at) for r in rows] == [(READY, "Submission", None, NOW + 5)]


async def test_servers_requested_state_survives_heartbeats(store: Store) -> None:
    with pytest.raises(NotFoundError):
        await store.servers.request_state("EXCH01", "Draining")
    await store.servers.heartbeat(ServerInfo("EXCH01", "EXCH01/0/a", "exch01.test", "Active", NOW, NOW), NOW + 60)
    drained = await store.servers.request_state("exch01", "Draining")
    assert (drained.name, drained.requested_state) == ("EXCH01", "Draining")
    await store.servers.heartbeat(ServerInfo("EXCH01", "EXCH01/0/a", "exch01.test", "Draining", NOW, NOW + 10),
                                  NOW + 70)
    [server] = await store.servers.list()
    assert (server.state, server.requested_state, server.heartbeat_at) == ("Draining", "Draining", NOW + 10)
    await store.messages.submit([message(rcpt("a@x.test", ACTIVE, owner="EXCH01/0/a"), rcpt("b@x.test", ACTIVE,
                                                                                          owner="EXCH01/0/a"))])
    assert await store.servers.active_by_owner() == {"EXCH01/0/a": 2}


async def test_tokens(store: Store) -> None:
    made = await store.tokens.create("ops", "h1", "read")
    assert (made.name, made.scope, made.read_only) == ("ops", "read", True)
    with pytest.raises(ConflictError):
        await store.tokens.create("OPS", "h2", "full")
    app = await store.tokens.create("app1", "h3", "submit")
    assert await store.tokens.by_hash("h1") == made and await store.tokens.by_hash("h3") == app
    assert not app.read_only
    assert await store.tokens.by_hash("nope") is None
    assert [t.name for t in await store.tokens.list()] == ["app1", "ops"]
    await store.tokens.delete("Ops")
    await store.tokens.delete("app1")
    assert await store.tokens.list() == []
    with pytest.raises(NotFoundError):
        await store.tokens.delete("ops")


# --- DKIM signing configs ------------------------------------------------------------------------

def dkim_config(domain: str = "contoso.test") -> DkimConfig:
    keys = (PublicKey(RSA, "selector1", "UlNBa2V5", NOW), PublicKey(ED25519, "selector1-ed25519", "RWRrZXk=", NOW))
    return DkimConfig(domain, slots=(keys, ()), created_at=NOW)


async def test_dkim_configs_round_trip_and_keep_private_keys_apart(store: Store) -> None:
    before = await store.dkim.version()
    config = dkim_config()
    await store.dkim.create(config, {"selector1": "fernet:rsa", "selector1-ed25519": "fernet:ed"})
    assert await store.dkim.version() > before
    assert await store.dkim.get("Contoso.TEST.") == config
    assert await store.dkim.list() == [config]
    assert await store.dkim.private_keys("contoso.test") == {"selector1": "fernet:rsa", "selector1-ed25519": "fernet:ed"}
    with pytest.raises(ConflictError, match="already exists"):
        await store.dkim.create(dkim_config(), {})
    with pytest.raises(NotFoundError, match=r"no DKIM signing config for 'fabrikam\.test'"):
        await store.dkim.get("fabrikam.test")


async def test_dkim_update_replaces_named_keys_and_drops_those_of_selectors_gone(store: Store) -> None:
    await store.dkim.create(dkim_config(), {"selector1": "k1", "selector1-ed25519": "e1"})
    second = (PublicKey(RSA, "selector2", "UlNBMg==", NOW + 1),)
    version = await store.dkim.version()
    updated = await store.dkim.update(
        "contoso.test", lambda c: dataclasses.replace(c.with_keys(2, second), pending=2), {"selector2": "k2"})
    assert updated.pending == 2 and await store.dkim.get("contoso.test") == updated
    assert await store.dkim.private_keys("contoso.test") == {"selector1": "k1", "selector1-ed25519": "e1",
                                                               "selector2": "k2"}
    assert await store.dkim.version() > version
    await store.dkim.update("contoso.test", lambda c: c.with_keys(1, c.keys(1)[:1]))
    assert await store.dkim.private_keys("contoso.test") == {"selector1": "k1", "selector2": "k2"}


async def test_dkim_delete(store: Store) -> None:
    await store.dkim.create(dkim_config(), {"selector1": "k1"})
    assert await store.dkim.delete("CONTOSO.test") == "contoso.test"
    assert await store.dkim.list() == []
    with pytest.raises(NotFoundError):
        await store.dkim.delete("contoso.test")
    with pytest.raises(NotFoundError):
        await store.dkim.private_keys("contoso.test")


# --- MTA-STS policy cache and TLS reports ---------------------------------------------------------


async def test_mta_sts_policies_are_cached_per_domain(store: Store) -> None:
    assert await store.mta_sts.get("fabrikam.test") is None
    first = CachedPolicy("fabrikam.test", "1", "version: STSv1\nmode: testing\nmx: a.test\nmax_age: 60\n", 10.0, 70.0)
    await store.mta_sts.put(first)
    await store.mta_sts.put(CachedPolicy("contoso.test", "9", "version: STSv1\nmode: none\nmax_age: 5\n", 1.0, 6.0))
    newer = CachedPolicy("fabrikam.test", "2", "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 90\n", 20.0, 110.0)
    await store.mta_sts.put(newer)
    assert await store.mta_sts.get("FABRIKAM.test") == newer
    assert [p.domain for p in await store.mta_sts.list()] == ["contoso.test", "fabrikam.test"]


async def test_tls_report_counts_add_up_and_a_report_is_taken_once(store: Store) -> None:
    key = PolicyKey("fabrikam.test", "tlsa", ("3 1 1 ab",), ("mx.fabrikam.test",))
    for _ in range(2):  # two servers, or two flushes
        row = CountRow("2026-12-04", key, success=3)
        row.failures[Failure("validation-failure", "mx.fabrikam.test", "192.0.2.1")] += 2
        await store.tls_reports.add([row])
    [day] = await store.tls_reports.counts("2026-12-04", "fabrikam.test")
    assert (day.successful, day.failed) == (6, 4)
    [(policy, success, failures)] = day.policies
    assert policy["policy-type"] == "tlsa" and success == 6 and failures[0]["failed-session-count"] == 4
    report = SentReport("2026-12-04", "fabrikam.test", "r1", "EXCH01", 1.0, {})
    assert await store.tls_reports.claim(report)
    assert not await store.tls_reports.claim(SentReport("2026-12-04", "fabrikam.test", "r2", "EXCH02", 2.0, {}))
    report.destinations["mailto:tls@fabrikam.test"] = "queued as 7"
    await store.tls_reports.update_sent(report)
    [sent] = await store.tls_reports.sent()
    assert (sent.report_id, sent.server, sent.destinations) == ("r1", "EXCH01", {"mailto:tls@fabrikam.test": "queued as 7"})
    await store.tls_reports.add([CountRow("2026-12-05", key, success=1)])
    await store.tls_reports.prune("2026-12-05")
    assert [d.day for d in await store.tls_reports.counts()] == ["2026-12-05"] and not await store.tls_reports.sent()
