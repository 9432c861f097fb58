"""Direct (MX) delivery end to end in one process, against a real DNS server (dnsmasq).

Every test gets its own dnsmasq on 127.0.0.1 serving only the records it names,
and capture sinks on 127.0.0.2 ... 127.0.0.5 that all listen on one port: the
DNS connector's ``Port``.  ``contoso.test`` (the senders' domain) has its MX on
127.0.0.5, so NDRs travel over MX delivery too.  At the end, unit tests of
``mx_endpoints`` ordering with a fake resolver.
"""

from __future__ import annotations

import email
import email.policy
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mailhop.delivery.endpoints import Endpoint
from mailhop.delivery.mx import DeliveryDnsError, mx_endpoints
from mailhop.testing.resolver import FakeResolver
from tests.support.client import make_message, submit
from tests.support.dns import DnsServer, shared_tcp_port
from tests.support.sink import Captured, Sink
from tests.support.wait import async_wait_for

MX1, MX2, AMX, HOME = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"
CONNECTOR = "Internet MX"
SENDER = "alice@contoso.test"

# The senders' own domain: where NDRs go.
HOME_MX = {"contoso.test": [(10, "mx.contoso.test")]}
HOME_A = {"mx.contoso.test": HOME}


# --- fixtures and helpers ----------------------------------------------------------------------

@pytest.fixture
def mx_port() -> int:
    """The SMTP port of every MX sink (and the connector's Port)."""
    return shared_tcp_port([MX1, MX2, AMX, HOME])


@pytest.fixture
def dns_server() -> Iterator[Callable[..., DnsServer]]:
    """Start a dnsmasq with the given records plus contoso.test's MX; stopped after the test."""
    servers: list[DnsServer] = []

    def start(*, mx: dict[str, list[tuple[int, str]]] | None = None, a: dict[str, str] | None = None,
              **others: Any) -> DnsServer:
        server = DnsServer(mx={**HOME_MX, **(mx or {})}, a={**HOME_A, **(a or {})}, **others)
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


async def mx_transport(transport_factory: Any, dns: DnsServer, port: int, **sections: Any) -> Any:
    t = await transport_factory(dns={"nameservers": [dns.nameserver], "timeout": "1s", "lifetime": "2s"},
                                **sections)
    await t.connector(Name=CONNECTOR, AddressSpaces="*", Port=str(port))
    return t


async def _empty(t: Any) -> bool:
    return await t.store.queues.messages() == []


def _events(t: Any, queue_id: int, event_id: str | None = None) -> list[dict[str, Any]]:
    return [e for e in t.tracking() if e.get("InternalMessageId") == queue_id
            and (event_id is None or e["EventId"] == event_id)]


def _delivery_status(data: bytes) -> str:
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            return "\n".join(str(p) for p in part.get_payload())
    raise AssertionError("no message/delivery-status part")


async def _ndr(home: Sink) -> Captured:
    [ndr] = await async_wait_for(lambda: home.for_recipient(SENDER), what="NDR to the sender")
    assert ndr.mail_from == ""
    assert ndr.message.get_content_type() == "multipart/report"
    return ndr


# --- MX order and failover ---------------------------------------------------------------------

async def test_lowest_preference_mx_gets_the_mail(transport_factory: Any, sink_factory: Any,
                                                  dns_server: Any, mx_port: int) -> None:
    dns = dns_server(mx={"fabrikam.test": [(20, "mx2.fabrikam.test"), (10, "mx1.fabrikam.test")]},
                     a={"mx1.fabrikam.test": MX1, "mx2.fabrikam.test": MX2})
    primary = sink_factory(host=MX1, port=mx_port)
    backup = sink_factory(host=MX2, port=mx_port)
    t = await mx_transport(transport_factory, dns, mx_port)
    for rcpt in ("bob@fabrikam.test", "carol@fabrikam.test", "dave@fabrikam.test"):
        await submit(t.port, SENDER, [rcpt])
    await async_wait_for(lambda: len(primary.messages) == 3, what="three deliveries to the MX 10 host")
    assert sorted(r for m in primary.messages for r in m.rcpt_tos) == [
        "bob@fabrikam.test", "carol@fabrikam.test", "dave@fabrikam.test"]
    assert backup.messages == [] and backup.handler.helos == []  # never even connected
    assert await async_wait_for(lambda: _empty(t), what="queue to empty")
    sends = [e for e in t.tracking() if e["EventId"] == "SEND"]
    assert len(sends) == 3
    assert {(e["ServerIp"], e["RemoteHost"], e["NextHopDomain"]) for e in sends} == {
        (MX1, "mx1.fabrikam.test", "fabrikam.test")}
    assert ("MX", "fabrikam.test") in dns.queries()


async def test_a_recipient_the_first_mx_defers_is_delivered_by_the_second_in_the_same_attempt(
        transport_factory: Any, sink_factory: Any, dns_server: Any, mx_port: int) -> None:
    dns = dns_server(mx={"fabrikam.test": [(10, "mx1.fabrikam.test"), (20, "mx2.fabrikam.test")]},
                     a={"mx1.fabrikam.test": MX1, "mx2.fabrikam.test": MX2})
    primary = sink_factory(host=MX1, port=mx_port, tempfail={"carol@fabrikam.test"}, reject={"gone@fabrikam.test"})
    backup = sink_factory(host=MX2, port=mx_port)
    t = await mx_transport(transport_factory, dns, mx_port)
    await submit(t.port, SENDER, ["bob@fabrikam.test", "carol@fabrikam.test", "gone@fabrikam.test"])
    await async_wait_for(lambda: primary.messages and backup.messages, what="deliveries at both MX hosts")
    assert [m.rcpt_tos for m in primary.messages] == [["bob@fabrikam.test"]]
    assert [m.rcpt_tos for m in backup.messages] == [["carol@fabrikam.test"]]  # the 5xx is not tried again
    sends = [e for e in t.tracking() if e["EventId"] == "SEND"]
    assert sorted(r for e in sends for r in e["Recipients"]) == ["bob@fabrikam.test", "carol@fabrikam.test"]
    # Nothing of it deferred (the NDR for gone@ to contoso.test's MX, which nothing runs, may be).
    assert not [e for e in t.tracking() if e["EventId"] == "DEFER" and e["Sender"] == SENDER]


async def test_failover_to_second_mx_when_first_refuses_connections(
        transport_factory: Any, sink_factory: Any, dns_server: Any, mx_port: int) -> None:
    dns = dns_server(mx={"fabrikam.test": [(10, "mx1.fabrikam.test"), (20, "mx2.fabrikam.test")]},
                     a={"mx1.fabrikam.test": MX1, "mx2.fabrikam.test": MX2})
    backup = sink_factory(host=MX2, port=mx_port)  # nothing listens on MX1
    t = await mx_transport(transport_factory, dns, mx_port)
    sent = await submit(t.port, SENDER, ["bob@fabrikam.test"])
    [got] = await async_wait_for(lambda: backup.messages, what="delivery to the MX 20 host")
    assert got.rcpt_tos == ["bob@fabrikam.test"] and got.mail_from == SENDER
    [send] = await async_wait_for(lambda: _events(t, sent.queue_id, "SEND"), what="SEND event")
    assert send["ServerIp"] == MX2 and send["RemoteHost"] == "mx2.fabrikam.test"
    assert not _events(t, sent.queue_id, "DEFER")
    assert await async_wait_for(lambda: _empty(t), what="queue to empty")
    # The failover was within one attempt: the queue never went to Retry.
    assert not [q for q in await t.store.queues.states() if q.queue == "fabrikam.test" and q.retry_count]


async def test_failover_to_second_mx_when_first_answers_4xx(
        transport_factory: Any, sink_factory: Any, dns_server: Any, mx_port: int) -> None:
    dns = dns_server(mx={"fabrikam.test": [(10, "mx1.fabrikam.test"), (20, "mx2.fabrikam.test")]},
                     a={"mx1.fabrikam.test": MX1, "mx2.fabrikam.test": MX2})
    busy = sink_factory(host=MX1, port=mx_port, data_reply="451 4.3.0 busy")
    backup = sink_factory(host=MX2, port=mx_port)
    t = await mx_transport(transport_factory, dns, mx_port)
    sent = await submit(t.port, SENDER, ["bob@fabrikam.test"])
    [got] = await async_wait_for(lambda: backup.messages, what="delivery to the MX 20 host")
    assert got.rcpt_tos == ["bob@fabrikam.test"]
    assert busy.messages == []
    assert busy.handler.helos == ["exch01.contoso.test"]  # the first MX was tried, once
    [send] = await async_wait_for(lambda: _events(t, sent.queue_id, "SEND"), what="SEND event")
    assert send["ServerIp"] == MX2
    assert not _events(t, sent.queue_id, "DEFER")
    assert await async_wait_for(lambda: _empty(t), what="queue to empty")


async def test_domain_without_mx_is_its_own_implicit_mx(transport_factory: Any, sink_factory: Any,
                                                        dns_server: Any, mx_port: int) -> None:
    dns = dns_server(a={"amx.test": AMX})
    direct = sink_factory(host=AMX, port=mx_port)
    t = await mx_transport(transport_factory, dns, mx_port)
    sent = await submit(t.port, SENDER, ["bob@amx.test"])
    [got] = await async_wait_for(lambda: direct.messages, what="delivery to the domain's A record")
    assert got.rcpt_tos == ["bob@amx.test"]
    [send] = await async_wait_for(lambda: _events(t, sent.queue_id, "SEND"), what="SEND event")
    assert send["ServerIp"] == AMX and send["RemoteHost"] == "amx.test"
    queries = dns.queries()
    assert queries.index(("MX", "amx.test")) < queries.index(("A", "amx.test"))


# --- DNS outcomes that decide the recipients' fate ----------------------------------------------

async def test_null_mx_fails_recipient_with_5_1_10(transport_factory: Any, sink_factory: Any,
                                                   dns_server: Any, mx_port: int) -> None:
    dns = dns_server(null_mx=["nullmx.test"])
    home = sink_factory(host=HOME, port=mx_port)
    t = await mx_transport(transport_factory, dns, mx_port)
    sent = await submit(t.port, SENDER, ["bob@nullmx.test"], make_message(subject="To nowhere", to="bob@nullmx.test"))
    ndr = await _ndr(home)
    assert ndr.message["Subject"] == "Undeliverable: To nowhere"
    status = _delivery_status(ndr.data)
    assert "Final-Recipient: rfc822; bob@nullmx.test" in status
    assert "Action: failed" in status and "Status: 5.1.10" in status
    assert "556 5.1.10" in status
    [fail] = _events(t, sent.queue_id, "FAIL")
    assert fail["Recipients"] == ["bob@nullmx.test"]
    assert fail["RecipientStatus"][0].startswith("556 5.1.10")
    assert not _events(t, sent.queue_id, "SEND")
    assert await async_wait_for(lambda: _empty(t), what="queue to empty")
    assert [m.rcpt_tos for m in home.messages] == [[SENDER]]
    # The null MX is final: its "host" (the root) is never looked up.
    assert [q for q in dns.queries() if q[1] == "nullmx.test"] == [("MX", "nullmx.test")]


async def test_nonexistent_domain_fails_recipient_with_5_4_4(transport_factory: Any, sink_factory: Any,
                                                             dns_server: Any, mx_port: int) -> None:
    dns = dns_server()
    home = sink_factory(host=HOME, port=mx_port)
    t = await mx_transport(transport_factory, dns, mx_port)
    sent = await submit(t.port, SENDER, ["bob@nowhere.test"])
    status = _delivery_status((await _ndr(home)).data)
    assert "Final-Recipient: rfc822; bob@nowhere.test" in status
    assert "Action: failed" in status and "Status: 5.4.4" in status
    assert "554 5.4.4" in status
    [fail] = _events(t, sent.queue_id, "FAIL")
    assert fail["RecipientStatus"][0].startswith("554 5.4.4")
    assert not _events(t, sent.queue_id, "DEFER")
    assert await async_wait_for(lambda: _empty(t), what="queue to empty")


async def test_dns_timeout_defers_and_puts_queue_in_retry(transport_factory: Any, sink_factory: Any,
                                                          dns_server: Any, mx_port: int) -> None:
    dns = dns_server(servfail=["servfail.test"])
    home = sink_factory(host=HOME, port=mx_port)
    t = await mx_transport(transport_factory, dns, mx_port)
    sent = await submit(t.port, SENDER, ["bob@servfail.test"])

    async def queue_in_retry() -> Any:
        return [q for q in await t.store.queues.states() if q.queue == "servfail.test" and q.retry_count >= 1]

    [state] = await async_wait_for(queue_in_retry, what="servfail.test queue in Retry")
    assert (state.last_error or "").startswith("451 4.4.0 DNS query failed"), state.last_error
    assert state.retry_until is not None

    async def retried() -> Any:  # a second attempt, and still only deferred
        rows = [r for info, rs in await t.store.queues.messages() if info.id == sent.queue_id for r in rs]
        return [r for r in rows if r.attempts >= 2 and r.last_error]

    [row] = await async_wait_for(retried, what="a second attempt")
    assert row.address == "bob@servfail.test"
    assert row.status in ("retry", "active") and row.queue == "servfail.test"
    assert row.last_error.startswith("451 4.4.0 DNS query failed")
    defers = _events(t, sent.queue_id, "DEFER")
    assert defers and all(e["RecipientStatus"][0].startswith("451 4.4.0 DNS query failed") for e in defers)
    # Deferred, not bounced: no failure, no DSN, no NDR in the queue or at the sender's MX.
    assert not _events(t, sent.queue_id, "FAIL") and not _events(t, sent.queue_id, "DSN")
    assert [info.id for info, _ in await t.store.queues.messages()] == [sent.queue_id]
    assert home.messages == []
    assert dns.queries().count(("MX", "servfail.test")) >= 2


# --- transactions per domain -------------------------------------------------------------------

async def test_mixed_recipient_outcomes_in_one_transaction(transport_factory: Any, sink_factory: Any,
                                                           dns_server: Any, mx_port: int) -> None:
    dns = dns_server(mx={"fabrikam.test": [(10, "mx1.fabrikam.test")]}, a={"mx1.fabrikam.test": MX1})
    mx = sink_factory(host=MX1, port=mx_port, reject={"gone@fabrikam.test"}, tempfail={"later@fabrikam.test"})
    home = sink_factory(host=HOME, port=mx_port)
    t = await mx_transport(transport_factory, dns, mx_port)
    rcpts = ["ok1@fabrikam.test", "gone@fabrikam.test", "later@fabrikam.test", "ok2@fabrikam.test"]
    sent = await submit(t.port, SENDER, rcpts)
    [first] = await async_wait_for(lambda: mx.messages, what="delivery of the accepted recipients")
    assert first.rcpt_tos == ["ok1@fabrikam.test", "ok2@fabrikam.test"]

    status = _delivery_status((await _ndr(home)).data)
    assert "Final-Recipient: rfc822; gone@fabrikam.test" in status
    assert "Status: 5.1.1" in status and "550 5.1.1 User unknown" in status
    assert "later@fabrikam.test" not in status and "ok1@fabrikam.test" not in status

    async def later_deferred() -> Any:
        rows = [r for info, rs in await t.store.queues.messages() if info.id == sent.queue_id for r in rs]
        return [r for r in rows if r.address == "later@fabrikam.test" and r.attempts >= 1
                and (r.last_error or "").startswith("450 4.2.0")]

    await async_wait_for(later_deferred, what="later@ deferred with 450")
    assert mx.for_recipient("later@fabrikam.test") == []
    mx.handler.tempfail.clear()
    [retry] = await async_wait_for(lambda: mx.for_recipient("later@fabrikam.test"), what="retry delivers later@")
    assert retry.rcpt_tos == ["later@fabrikam.test"]
    assert await async_wait_for(lambda: _empty(t), what="queue to empty")
    # The accepted recipients went in exactly one transaction, the deferred one in a later one.
    assert [m.rcpt_tos for m in mx.messages] == [["ok1@fabrikam.test", "ok2@fabrikam.test"],
                                                 ["later@fabrikam.test"]]
    assert len(home.messages) == 1
    events = _events(t, sent.queue_id)
    [fail] = [e for e in events if e["EventId"] == "FAIL"]
    assert fail["Recipients"] == ["gone@fabrikam.test"] and fail["RecipientStatus"][0].startswith("550 5.1.1")
    defer = [e for e in events if e["EventId"] == "DEFER"]
    assert defer and defer[0]["Recipients"] == ["later@fabrikam.test"]
    assert defer[0]["RecipientStatus"][0].startswith("450 4.2.0")
    sends = [e for e in events if e["EventId"] == "SEND"]
    assert [e["Recipients"] for e in sends] == [["ok1@fabrikam.test", "ok2@fabrikam.test"],
                                                ["later@fabrikam.test"]]


async def test_each_domain_gets_its_own_transaction(transport_factory: Any, sink_factory: Any,
                                                    dns_server: Any, mx_port: int) -> None:
    # Both domains have the same MX host: still one transaction per domain.
    dns = dns_server(mx={"fabrikam.test": [(10, "mx.shared.test")], "northwind.test": [(10, "mx.shared.test")],
                         "tailspin.test": [(10, "mx.tailspin.test")]},
                     a={"mx.shared.test": MX1, "mx.tailspin.test": MX2})
    shared = sink_factory(host=MX1, port=mx_port)
    tailspin = sink_factory(host=MX2, port=mx_port)
    t = await mx_transport(transport_factory, dns, mx_port)
    rcpts = ["a@fabrikam.test", "c@northwind.test", "e@tailspin.test", "b@fabrikam.test", "d@northwind.test"]
    sent = await submit(t.port, SENDER, rcpts)
    await async_wait_for(lambda: len(shared.messages) >= 2 and tailspin.messages, what="deliveries to both hosts")
    assert await async_wait_for(lambda: _empty(t), what="queue to empty")
    assert sorted(sorted(m.rcpt_tos) for m in shared.messages) == [
        ["a@fabrikam.test", "b@fabrikam.test"], ["c@northwind.test", "d@northwind.test"]]
    assert [m.rcpt_tos for m in tailspin.messages] == [["e@tailspin.test"]]
    assert len({m.data for m in shared.messages + tailspin.messages}) == 1  # the same message each time
    sends = _events(t, sent.queue_id, "SEND")
    assert sorted((e["NextHopDomain"], sorted(e["Recipients"])) for e in sends) == [
        ("fabrikam.test", ["a@fabrikam.test", "b@fabrikam.test"]),
        ("northwind.test", ["c@northwind.test", "d@northwind.test"]),
        ("tailspin.test", ["e@tailspin.test"]),
    ]


async def test_tracking_follows_message_from_receive_to_send(transport_factory: Any, sink_factory: Any,
                                                             dns_server: Any, mx_port: int) -> None:
    dns = dns_server(mx={"fabrikam.test": [(10, "mx1.fabrikam.test")]}, a={"mx1.fabrikam.test": MX1})
    mx = sink_factory(host=MX1, port=mx_port)
    t = await mx_transport(transport_factory, dns, mx_port)
    sent = await submit(t.port, SENDER, ["bob@fabrikam.test"], make_message(subject="Tracked"))
    await async_wait_for(lambda: mx.messages, what="delivery")
    [send] = await async_wait_for(lambda: _events(t, sent.queue_id, "SEND"), what="SEND event")
    kinds = [e["EventId"] for e in _events(t, sent.queue_id)]
    assert kinds[0] == "RECEIVE" and kinds[-1] == "SEND"
    assert not {"DEFER", "FAIL", "DSN"} & set(kinds)
    [receive] = _events(t, sent.queue_id, "RECEIVE")
    assert receive["Sender"] == SENDER and receive["MessageId"] == send["MessageId"]
    assert send["ConnectorId"] == CONNECTOR
    assert send["Source"] == "SMTP"
    assert send["Recipients"] == ["bob@fabrikam.test"] and send["RecipientCount"] == 1
    assert send["RecipientStatus"][0].startswith("250")
    assert send["ServerIp"] == MX1 and send["RemoteHost"] == "mx1.fabrikam.test"
    assert send["NextHopDomain"] == "fabrikam.test"
    assert send["Timestamp"] >= receive["Timestamp"]


# --- unit: mx_endpoints ordering with a fake resolver ----------------------------------------------

async def any_mx(*args: Any, **kwargs: Any) -> list[Endpoint]:
    """mx_endpoints for the unit tests of ordering: their documentation addresses count as private."""
    return await mx_endpoints(*args, allow_private=True, **kwargs)


async def test_unit_private_addresses_and_ip_literal_mx_names_are_skipped() -> None:
    r = FakeResolver(mx={"mixed.test": [(10, "inside.mixed.test"), (20, "outside.mixed.test"), (5, "192.0.2.1")],
                         "hostile.test": [(10, "loop.hostile.test"), (20, "ll.hostile.test")],
                         "literal.test": [(10, "192.0.2.1")]},
                     addresses={"inside.mixed.test": ["10.1.2.3", "fd00::1"], "outside.mixed.test": ["1.2.3.4"],
                                "loop.hostile.test": ["127.0.0.1", "::1"], "ll.hostile.test": ["169.254.1.1"]})
    assert await mx_endpoints("mixed.test", 25, r) == [Endpoint("outside.mixed.test", "1.2.3.4", 25)]
    with pytest.raises(DeliveryDnsError) as hostile:
        await mx_endpoints("hostile.test", 25, r)
    assert (hostile.value.reply.code, hostile.value.reply.enhanced) == (451, "4.4.0")
    assert "loopback, private or link-local" in hostile.value.reply.text
    with pytest.raises(DeliveryDnsError) as literal:
        await mx_endpoints("literal.test", 25, r, allow_private=True)
    assert "names an IP address" in literal.value.reply.text
    assert [e.ip for e in await mx_endpoints("hostile.test", 25, r, allow_private=True)] == [
        "127.0.0.1", "::1", "169.254.1.1"]


def _resolver(records: list[tuple[int, str]], domain: str = "example.test") -> FakeResolver:
    hosts = {h.lower(): [f"192.0.2.{i}"] for i, h in enumerate(sorted({h.lower() for _, h in records}), 1)}
    return FakeResolver(mx={domain: records}, addresses=hosts)


def _hosts(endpoints: list[Endpoint]) -> list[str]:
    return [e.host for e in endpoints]


async def test_unit_mx_hosts_in_preference_order_each_address_in_turn() -> None:
    r = FakeResolver(mx={"example.test": [(30, "c.test"), (10, "a.test"), (20, "b.test")]},
                     addresses={"a.test": ["192.0.2.1", "2001:db8::1"], "b.test": ["192.0.2.2"],
                                "c.test": ["192.0.2.3"]})
    eps = await any_mx("example.test", 2525, r, rng=random.Random(1))
    assert eps == [Endpoint("a.test", "192.0.2.1", 2525), Endpoint("a.test", "2001:db8::1", 2525),
                   Endpoint("b.test", "192.0.2.2", 2525), Endpoint("c.test", "192.0.2.3", 2525)]


async def test_unit_equal_preference_hosts_are_shuffled_by_the_rng() -> None:
    records = [(10, "a.test"), (10, "b.test"), (10, "c.test"), (10, "d.test"), (20, "e.test"), (20, "f.test")]
    orders = set()
    for seed in range(30):
        first = _hosts(await any_mx("example.test", 25, _resolver(records), max_mx_hosts=10,
                                          rng=random.Random(seed)))
        again = _hosts(await any_mx("example.test", 25, _resolver(records), max_mx_hosts=10,
                                          rng=random.Random(seed)))
        assert first == again  # a seeded rng makes the order reproducible
        assert sorted(first[:4]) == ["a.test", "b.test", "c.test", "d.test"]  # preference 10 first
        assert sorted(first[4:]) == ["e.test", "f.test"]
        orders.add(tuple(first))
    assert len({o[:4] for o in orders}) > 5  # equal-preference hosts really are shuffled
    assert {o[4:] for o in orders} == {("e.test", "f.test"), ("f.test", "e.test")}


async def test_unit_max_mx_hosts_keeps_the_most_preferred() -> None:
    records = [(p, f"mx{p}.test") for p in (70, 10, 50, 30, 60, 20, 40)]
    r = _resolver(records)
    eps = await any_mx("example.test", 25, r, max_mx_hosts=3, rng=random.Random(0))
    assert _hosts(eps) == ["mx10.test", "mx20.test", "mx30.test"]
    looked_up = list(dict.fromkeys(name for kind, name in r.queries if kind in ("A", "AAAA")))
    assert looked_up == ["mx10.test", "mx20.test", "mx30.test"]  # the others are not even resolved


async def test_unit_duplicate_mx_records_give_one_host() -> None:
    records = [(10, "mx1.test"), (10, "MX1.test"), (10, "mx1.test"), (20, "mx2.test")]
    eps = await any_mx("example.test", 25, _resolver(records), rng=random.Random(0))
    assert _hosts(eps) == ["mx1.test", "mx2.test"]


async def test_unit_host_listed_at_two_preferences_is_tried_once_at_the_better_one() -> None:
    # mx1 is both primary and backup; the real backup (mx2) must still make the cut of 2 hosts.
    records = [(10, "mx1.test"), (20, "mx1.test"), (30, "mx2.test")]
    eps = await any_mx("example.test", 25, _resolver(records), max_mx_hosts=2, rng=random.Random(0))
    assert len(set(eps)) == len(eps), f"duplicate endpoints: {eps}"
    assert _hosts(eps) == ["mx1.test", "mx2.test"]


async def test_unit_dns_outcomes() -> None:
    r = FakeResolver(mx={"implicit.test": [], "dangling.test": [(10, "missing.test")]}, null_mx=["null.test"],
                     addresses={"implicit.test": ["192.0.2.9"]})
    assert await any_mx("implicit.test", 25, r) == [Endpoint("implicit.test", "192.0.2.9", 25)]
    with pytest.raises(DeliveryDnsError) as null:
        await any_mx("null.test", 25, r)
    assert (null.value.reply.code, null.value.reply.enhanced, null.value.permanent) == (556, "5.1.10", True)
    with pytest.raises(DeliveryDnsError) as nx:
        await any_mx("nx.test", 25, r)
    assert (nx.value.reply.code, nx.value.reply.enhanced) == (554, "5.4.4")
    with pytest.raises(DeliveryDnsError) as dangling:  # MX hosts that do not resolve: try again later
        await any_mx("dangling.test", 25, r)
    assert (dangling.value.reply.code, dangling.value.reply.enhanced, dangling.value.permanent) == (451, "4.4.0", False)
