"""The Store contract, run against every implementation (one suite, many stores)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailhop.errors import ConflictError, NotFoundError
from mailhop.model.connector import new_connector, update_connector
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
    new_message_id,
)
from mailhop.store import open_url
from mailhop.store.base import QueueState, ServerInfo, Store
from tests.support.pg import PostgresServer

NOW = 1_900_000_000.0


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        return server.database()
    return f"sqlite:{tmp_path / 'store' / 'mailhop.db'}"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    s = await open_url(store_url, "")
    yield s
    await s.close()


def message(*recipients: NewRecipient, sender: str = "alice@contoso.test", body: bytes = b"Subject: t\r\n\r\nhi\r\n",
            delay_at: float | None = NOW + 3600) -> NewMessage:
    info = MessageInfo(id=new_message_id(), sender=sender, received_at=NOW, size=len(body), origin_server="EXCH01",
                       expires_at=NOW + 86400, delay_at=delay_at, subject="t")
    return NewMessage(info, body, list(recipients))


def rcpt(address: str, status: str = READY, queue: str = "Smarthost", when: float = NOW,
         connector: str | None = "guid-1", owner: str | None = None) -> NewRecipient:
    return NewRecipient(address, status, queue, "SmartHostConnectorDelivery", "smtp.contoso.test", when,
                        connector=connector, lease_owner=owner, lease_until=NOW + 60 if owner else None)


async def test_submit_is_durable_across_reopen(store: Store, store_url: str) -> None:
    m = message(rcpt("bob@fabrikam.test"), body=b"Subject: x\r\n\r\n" + bytes(range(256)) * 100)
    await store.submit([m])
    await store.close()
    reopened = await open_url(store_url, "")
    try:
        assert await reopened.load_body(m.info.id) == m.body
        listed = await reopened.messages()
        assert [info.id for info, _ in listed] == [m.info.id]
        assert [r.address for r in listed[0][1]] == ["bob@fabrikam.test"]
    finally:
        await reopened.close()


async def test_submit_is_atomic(store: Store) -> None:
    first = message(rcpt("a@x.test"))
    clash = message(rcpt("b@x.test"))
    clash.info.id = first.info.id
    with pytest.raises(ConflictError):
        await store.submit([message(rcpt("c@x.test")), first, clash])
    assert await store.messages() == []


async def test_claim_leases_only_due_recipients_once(store: Store) -> None:
    due = message(rcpt("due@x.test"), rcpt("later@x.test", RETRY, when=NOW + 600))
    await store.submit([due])
    claims = await store.claim("EXCH01/a", NOW, NOW + 60, 100, None)
    assert [[r.address for r in c.recipients] for c in claims] == [["due@x.test"]]
    assert claims[0].recipients[0].status == ACTIVE
    assert claims[0].message.sender == "alice@contoso.test"
    assert await store.claim("EXCH02/b", NOW, NOW + 60, 100, None) == []
    later = await store.claim("EXCH02/b", NOW + 601, NOW + 661, 100, None)
    assert [r.address for c in later for r in c.recipients] == ["later@x.test"]


async def test_claim_honours_connector_filter_and_suspended_queues(store: Store) -> None:
    await store.submit([message(rcpt("mine@x.test", connector="g-mine", queue="Q1"),
                                rcpt("other@x.test", connector="g-other", queue="Q2"),
                                rcpt("unrouted@x.test", connector=None, queue="Submission"),
                                rcpt("held@x.test", connector="g-mine", queue="Held"))])
    await store.set_queue_state(QueueState("Held", suspended=True))
    claims = await store.claim("EXCH01/a", NOW, NOW + 60, 100, ["g-mine"])
    assert sorted(r.address for c in claims for r in c.recipients) == ["mine@x.test", "unrouted@x.test"]


async def test_record_deletes_finished_messages_only(store: Store) -> None:
    m = message(rcpt("a@x.test"), rcpt("b@x.test"))
    await store.submit([m])
    claim = (await store.claim("S/1", NOW, NOW + 60, 10, None))[0]
    a, b = claim.recipients
    await store.record(RecordBatch([RecipientUpdate(a.id, DELIVERED, attempted=True),
                                    RecipientUpdate(b.id, RETRY, next_attempt_at=NOW + 300, last_error="451 4.4.0 x", attempted=True)]))
    rows = (await store.messages())[0][1]
    assert {r.address: (r.status, r.attempts, r.last_error) for r in rows} == {
        "a@x.test": (DELIVERED, 1, None), "b@x.test": (RETRY, 1, "451 4.4.0 x")}
    claim = (await store.claim("S/1", NOW + 300, NOW + 360, 10, None))[0]
    ndr = message(rcpt("alice@contoso.test"), sender="")
    await store.record(RecordBatch([RecipientUpdate(claim.recipients[0].id, FAILED, last_error="550 5.1.1 no")], [ndr]))
    remaining = await store.messages()
    assert [info.id for info, _ in remaining] == [ndr.info.id]
    with pytest.raises(NotFoundError):
        await store.load_body(m.info.id)


async def test_record_moves_recipient_to_new_route(store: Store) -> None:
    await store.submit([message(rcpt("a@x.test", connector=None, queue="Submission"))])
    r = (await store.claim("S/1", NOW, NOW + 60, 10, None))[0].recipients[0]
    await store.record(RecordBatch([RecipientUpdate(r.id, READY, queue="fabrikam.test", connector="g2",
                                            delivery_type="DnsConnectorDelivery", next_hop="fabrikam.test")]))
    row = (await store.messages())[0][1][0]
    assert (row.queue, row.connector, row.delivery_type, row.status) == ("fabrikam.test", "g2", "DnsConnectorDelivery", READY)
    await store.record(RecordBatch([RecipientUpdate(r.id, RETRY, queue="Unreachable", clear_connector=True)]))
    row = (await store.messages())[0][1][0]
    assert (row.queue, row.connector) == ("Unreachable", None)


async def test_release_and_recover_free_leases(store: Store) -> None:
    await store.submit([message(rcpt("a@x.test", ACTIVE, owner="EXCH01/old")),
                        message(rcpt("b@x.test", ACTIVE, owner="EXCH02/live"))])
    # A new incarnation of EXCH01 frees its dead predecessor's lease, not EXCH02's live one.
    freed = await store.recover("EXCH01", "EXCH01/new", NOW)
    assert len(freed) == 1
    claims = await store.claim("EXCH01/new", NOW, NOW + 60, 10, None)
    assert [r.address for c in claims for r in c.recipients] == ["a@x.test"]
    # An expired lease is free for anyone.
    assert len(await store.recover("EXCH03", "EXCH03/x", NOW + 61)) == 2
    assert await store.release("EXCH01/new", NOW) == 0  # recover already freed it
    claims = await store.claim("EXCH03/x", NOW + 61, NOW + 121, 10, None)
    assert sorted(r.address for c in claims for r in c.recipients) == ["a@x.test", "b@x.test"]
    assert await store.release("EXCH03/x", NOW + 61) == 2


async def test_heartbeat_extends_leases(store: Store) -> None:
    await store.submit([message(rcpt("a@x.test", ACTIVE, owner="EXCH01/i1"))])
    await store.heartbeat(ServerInfo("EXCH01", "EXCH01/i1", "exch01.test", "Active", NOW, NOW), NOW + 600)
    assert await store.recover("EXCH02", "EXCH02/i", NOW + 300) == []
    servers = await store.servers()
    assert [(s.name, s.state) for s in servers] == [("EXCH01", "Active")]


async def test_resubmit_sends_unreachable_and_orphaned_recipients_to_submission(store: Store) -> None:
    await store.submit([message(rcpt("u@x.test", RETRY, queue="Unreachable", connector=None, when=NOW + 999),
                                rcpt("gone@x.test", connector="deleted"),
                                rcpt("kept@x.test", connector="live"))])
    assert await store.resubmit(["live"], NOW) == 2
    rows = {r.address: r for r in (await store.messages())[0][1]}
    assert rows["u@x.test"].queue == "Submission" and rows["u@x.test"].next_attempt_at == NOW
    assert rows["gone@x.test"].connector is None
    assert rows["kept@x.test"].connector == "live"


async def test_resubmit_of_removed_connectors_touches_only_theirs(store: Store) -> None:
    await store.submit([message(rcpt("u@x.test", RETRY, queue="Unreachable", connector=None, when=NOW + 999),
                                rcpt("gone@x.test", connector="removed"),
                                rcpt("unknown@x.test", connector="not-live-but-not-named"),
                                rcpt("kept@x.test", connector="live"))])
    assert await store.resubmit(["live"], NOW, removed=["removed"]) == 2
    rows = {r.address: r for r in (await store.messages())[0][1]}
    assert rows["u@x.test"].queue == "Submission"
    assert rows["gone@x.test"].connector is None and rows["gone@x.test"].queue == "Submission"
    assert rows["unknown@x.test"].connector == "not-live-but-not-named"
    assert rows["kept@x.test"].connector == "live"
    assert await store.resubmit(["live"], NOW, removed=[]) == 0


async def test_next_due(store: Store) -> None:
    assert await store.next_due(None) is None
    await store.submit([message(rcpt("a@x.test", RETRY, when=NOW + 50), rcpt("b@x.test", RETRY, when=NOW + 20))])
    assert await store.next_due(None) == NOW + 20
    assert await store.next_due(["other"]) is None


async def test_delay_notified_clears_delay_time(store: Store) -> None:
    m = message(rcpt("a@x.test"))
    await store.submit([m])
    await store.record(RecordBatch(delay_notified=[m.info.id]))
    assert (await store.messages())[0][0].delay_at is None


async def test_connectors_crud_and_config_version(store: Store) -> None:
    v0 = await store.config_version()
    c = new_connector({"Name": "To Internet", "AddressSpaces": "*"}, "EXCH01")
    await store.create_connector(c, secret="s3cret")
    assert await store.config_version() > v0
    with pytest.raises(ConflictError):
        await store.create_connector(new_connector({"Name": "to internet", "AddressSpaces": "*"}, "EXCH01"))
    got = await store.get_connector("TO INTERNET")
    assert got == c
    assert await store.connector_secret(c.guid) == "s3cret"
    v1 = await store.config_version()
    updated = await store.update_connector("To Internet", lambda x: update_connector(x, {"Enabled": "false"}))
    assert updated.enabled is False and (await store.get_connector(c.guid)).enabled is False
    assert await store.config_version() > v1
    assert await store.connector_secret(c.guid) == "s3cret"
    await store.create_connector(new_connector({"Name": "Other", "AddressSpaces": "x.test"}, "EXCH01"))
    with pytest.raises(ConflictError):
        await store.update_connector("Other", lambda x: update_connector(x, {"Name": "To Internet"}))
    removed = await store.delete_connector("To Internet")
    assert removed.guid == c.guid
    assert [x.name for x in await store.list_connectors()] == ["Other"]
    with pytest.raises(NotFoundError):
        await store.get_connector("To Internet")
    with pytest.raises(NotFoundError):
        await store.delete_connector("To Internet")


async def test_queue_state_round_trip(store: Store) -> None:
    state = QueueState("fabrikam.test", suspended=False, retry_until=NOW + 60, retry_count=3,
                       first_retry_at=NOW - 100, last_retry_at=NOW, last_error="451 4.4.0 down")
    await store.set_queue_state(state)
    assert await store.queue_states() == [state]
    await store.set_queue_state(QueueState("fabrikam.test", suspended=True))
    assert (await store.queue_states())[0].suspended is True


async def test_many_concurrent_submits_all_commit(store: Store) -> None:
    import asyncio

    messages = [message(rcpt(f"r{i}@x.test")) for i in range(300)]
    await asyncio.gather(*(store.submit([m]) for m in messages))
    assert len(await store.messages(limit=1000)) == 300
