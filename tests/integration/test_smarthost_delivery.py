"""Smart-host delivery end to end in one process: receive, commit, route, relay, outcomes."""

from __future__ import annotations

import email
import email.policy
from typing import Any

import aiosmtplib
import pytest

from tests.support.client import make_message, submit
from tests.support.net import free_port
from tests.support.sink import Sink
from tests.support.wait import async_wait_for


async def test_relay_through_smart_host_with_received_chain(transport_factory: Any, sink: Sink) -> None:
    t = await transport_factory()
    await t.connector(Name="Smarthost To Internet", Usage="internet", DNSRoutingEnabled="false",
                      SmartHosts=f"[127.0.0.1]:{sink.port}", AddressSpaces="*")
    sent = await submit(t.port, "alice@contoso.test", ["bob@fabrikam.test"],
                        make_message(subject="Quarterly report", body="Numbers.\r\n.dot line\r\n..two dots\r\n"))
    assert sent.text.startswith("2.0.0 Ok: queued as") or "queued as" in sent.text
    [got] = await async_wait_for(lambda: sink.messages, what="delivery to the smart host")
    assert got.mail_from == "alice@contoso.test"
    assert got.rcpt_tos == ["bob@fabrikam.test"]
    assert got.helo == "exch01.contoso.test"
    msg = got.message
    received = got.received()
    assert len(received) == 1
    assert "by exch01.contoso.test (mailhop)" in received[0] and "with ESMTP" in received[0]
    assert f"id {sent.queue_id}" in received[0]
    assert msg["Subject"] == "Quarterly report"
    assert msg["Message-ID"] and msg["Date"]  # added because the client sent none
    assert got.data.endswith(b"Numbers.\r\n.dot line\r\n..two dots\r\n")
    events = await async_wait_for(lambda: [e["EventId"] for e in t.tracking() if e.get("InternalMessageId") == sent.queue_id
                                           and e["EventId"] == "SEND"], what="SEND event")
    assert events == ["SEND"]
    kinds = [e["EventId"] for e in t.tracking() if e.get("InternalMessageId") == sent.queue_id]
    assert kinds[0] == "RECEIVE"
    # A delivered message leaves the queue.
    assert await async_wait_for(lambda: _empty(t), what="queue to empty")


async def _empty(t: Any) -> bool:
    return await t.store.queues.messages() == []


async def test_failover_to_second_smart_host(transport_factory: Any, sink: Sink) -> None:
    t = await transport_factory()
    dead = free_port()
    await t.connector(Name="Relay", DNSRoutingEnabled="false",
                      SmartHosts=f"[127.0.0.1]:{dead},[127.0.0.1]:{sink.port}", AddressSpaces="*")
    await submit(t.port, "alice@contoso.test", ["bob@fabrikam.test"])
    [got] = await async_wait_for(lambda: sink.messages, what="delivery through the second smart host")
    assert got.rcpt_tos == ["bob@fabrikam.test"]


async def test_4xx_at_data_fails_over_to_next_smart_host(transport_factory: Any, sink_factory: Any) -> None:
    busy = sink_factory(data_reply="451 4.3.0 Try later")
    good = sink_factory()
    t = await transport_factory()
    await t.connector(Name="Relay", DNSRoutingEnabled="false",
                      SmartHosts=f"[127.0.0.1]:{busy.port},[127.0.0.1]:{good.port}", AddressSpaces="*")
    await submit(t.port, "alice@contoso.test", ["bob@fabrikam.test"])
    await async_wait_for(lambda: good.messages, what="delivery after failover")
    assert busy.messages == []


async def test_mixed_recipient_outcomes_in_one_transaction(transport_factory: Any, sink_factory: Any) -> None:
    relay = sink_factory(reject={"gone@fabrikam.test"}, tempfail={"later@fabrikam.test"})
    t = await transport_factory()
    await t.connector(Name="Relay", DNSRoutingEnabled="false", SmartHosts=f"[127.0.0.1]:{relay.port}",
                      AddressSpaces="*")
    await submit(t.port, "alice@contoso.test", ["ok@fabrikam.test", "gone@fabrikam.test", "later@fabrikam.test"])
    # ok is delivered, gone bounces (NDR back to alice through the same relay), later is retried.
    await async_wait_for(lambda: relay.for_recipient("ok@fabrikam.test"), what="first delivery")
    ndr = await async_wait_for(lambda: relay.for_recipient("alice@contoso.test"), what="NDR")
    assert ndr[0].mail_from == ""
    report = ndr[0].message
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    status = _delivery_status(ndr[0].data)
    assert "Final-Recipient: rfc822; gone@fabrikam.test" in status
    assert "Status: 5.1.1" in status and "Action: failed" in status
    assert "550 5.1.1 User unknown" in status
    assert "later@fabrikam.test" not in status
    relay.handler.tempfail.clear()
    later = await async_wait_for(lambda: relay.for_recipient("later@fabrikam.test"), what="retry delivers")
    assert len(later) == 1
    first = relay.for_recipient("ok@fabrikam.test")[0]
    assert first.rcpt_tos == ["ok@fabrikam.test"]  # the one transaction carried only accepted recipients
    events = t.tracking()
    defer = [e for e in events if e["EventId"] == "DEFER"]
    assert defer and defer[0]["Recipients"] == ["later@fabrikam.test"]
    assert defer[0]["RecipientStatus"][0].startswith("450 4.2.0")
    assert any(e["EventId"] == "FAIL" and e["Recipients"] == ["gone@fabrikam.test"] for e in events)
    assert any(e["EventId"] == "DSN" for e in events)


def _delivery_status(data: bytes) -> str:
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            return "\n".join(str(p) for p in part.get_payload())
    raise AssertionError("no message/delivery-status part")


async def test_no_ndr_for_null_sender(transport_factory: Any, sink_factory: Any) -> None:
    relay = sink_factory(reject={"gone@fabrikam.test"})
    t = await transport_factory()
    await t.connector(Name="Relay", DNSRoutingEnabled="false", SmartHosts=f"[127.0.0.1]:{relay.port}",
                      AddressSpaces="*")
    sent = await submit(t.port, "", ["gone@fabrikam.test"], make_message(sender="MAILER-DAEMON@contoso.test"))
    await async_wait_for(lambda: [e for e in t.tracking() if e["EventId"] == "FAIL"
                                  and e.get("InternalMessageId") == sent.queue_id], what="FAIL")
    await async_wait_for(lambda: _empty(t), what="queue to empty")
    assert relay.messages == []
    assert not [e for e in t.tracking() if e["EventId"] == "DSN"]


async def test_connection_reuse_up_to_max_messages_per_connection(transport_factory: Any, sink: Sink) -> None:
    t = await transport_factory(delivery={"connection_cache_time": "5s", "max_per_domain_outbound_connections": 1})
    await t.connector(Name="Relay", DNSRoutingEnabled="false", SmartHosts=f"[127.0.0.1]:{sink.port}",
                      AddressSpaces="*", SmtpMaxMessagesPerConnection="2")
    for i in range(5):
        await submit(t.port, "alice@contoso.test", [f"r{i}@fabrikam.test"])
    await async_wait_for(lambda: len(sink.messages) == 5, what="five deliveries")
    # One connection at a time, at most two messages each: three EHLOs.
    assert len(sink.handler.helos) == 3


async def test_unreachable_host_puts_queue_in_retry_then_delivers(transport_factory: Any) -> None:
    port = free_port()
    t = await transport_factory()
    await t.connector(Name="Relay", DNSRoutingEnabled="false", SmartHosts=f"[127.0.0.1]:{port}", AddressSpaces="*")
    await submit(t.port, "alice@contoso.test", ["bob@fabrikam.test"])

    async def in_retry() -> Any:
        states = [q for q in await t.store.queues.states() if q.queue == "Relay" and q.retry_count >= 1]
        return states
    [state] = await async_wait_for(in_retry, what="queue in Retry")
    assert f"127.0.0.1:{port}" in (state.last_error or "")
    assert state.last_error.startswith("441 4.4.1")
    rows = (await t.store.queues.messages())[0][1]
    assert rows[0].status in ("retry", "active") and rows[0].queue == "Relay"
    late = Sink(port=port).start()
    try:
        await async_wait_for(lambda: late.messages, what="delivery once the host is up")
        async def cleared() -> bool:
            return all(q.retry_count == 0 and q.last_error is None for q in await t.store.queues.states() if q.queue == "Relay")
        assert await async_wait_for(cleared, what="queue back to Ready")
    finally:
        late.stop()


async def test_unreachable_queue_then_connector_created(transport_factory: Any, sink: Sink) -> None:
    t = await transport_factory()
    await submit(t.port, "alice@contoso.test", ["bob@fabrikam.test"])
    rows = (await t.store.queues.messages())[0][1]
    assert (rows[0].queue, rows[0].delivery_type) == ("Unreachable", "Unreachable")
    assert "matching connector cannot be found" in (rows[0].last_error or "")
    await t.connector(Name="Late", DNSRoutingEnabled="false", SmartHosts=f"[127.0.0.1]:{sink.port}", AddressSpaces="*")
    await async_wait_for(lambda: sink.messages, what="resubmitted delivery")


async def test_size_limit_ndr_at_submission(transport_factory: Any, sink: Sink) -> None:
    t = await transport_factory()
    await t.connector(Name="Small", DNSRoutingEnabled="false", SmartHosts=f"[127.0.0.1]:{sink.port}",
                      AddressSpaces="fabrikam.test", MaxMessageSize="1KB")
    await t.connector(Name="Home", DNSRoutingEnabled="false", SmartHosts=f"[127.0.0.1]:{sink.port}",
                      AddressSpaces="contoso.test")
    await submit(t.port, "alice@contoso.test", ["bob@fabrikam.test"], make_message(body=("x" * 78 + "\r\n") * 50))
    [ndr] = await async_wait_for(lambda: sink.for_recipient("alice@contoso.test"), what="size NDR")
    status = _delivery_status(ndr.data)
    assert "Status: 5.3.4" in status and "ROUTING.SizeLimit" in status
    assert sink.for_recipient("bob@fabrikam.test") == []


async def test_mail_loop_is_bounced_with_5_4_6(transport_factory: Any, sink: Sink) -> None:
    t = await transport_factory(server={"max_hop_count": 5})
    await t.connector(Name="All", DNSRoutingEnabled="false", SmartHosts=f"[127.0.0.1]:{sink.port}", AddressSpaces="*")
    data = b"".join(f"Received: from hop{i}.test by hop{i+1}.test; Sat, 28 Nov 2026 00:00:0{i} +0000\r\n".encode()
                    for i in range(5)) + make_message()
    await submit(t.port, "alice@contoso.test", ["bob@fabrikam.test"], data)
    [ndr] = await async_wait_for(lambda: sink.for_recipient("alice@contoso.test"), what="loop NDR")
    assert "Status: 5.4.6" in _delivery_status(ndr.data)
    assert sink.for_recipient("bob@fabrikam.test") == []


async def test_relay_refused_outside_remote_ip_ranges(transport_factory: Any, sink: Sink) -> None:
    t = await transport_factory(receive_connectors=[{"name": "Apps", "bind": f"127.0.0.1:{free_port()}",
                                                     "remote_ip_ranges": ["127.0.0.2"]}])
    await t.connector(Name="All", DNSRoutingEnabled="false", SmartHosts=f"[127.0.0.1]:{sink.port}", AddressSpaces="*")
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as err:
        await submit(t.port, "alice@contoso.test", ["bob@fabrikam.test"])
    refusal = err.value.recipients[0]
    assert refusal.code == 550
    assert refusal.message == "5.7.54 SMTP; Unable to relay recipient in non-accepted domain"
    assert await t.store.queues.messages() == []


async def test_sender_based_routing_two_smart_hosts(transport_factory: Any, sink_factory: Any) -> None:
    contoso_relay = sink_factory()
    fabrikam_relay = sink_factory()
    t = await transport_factory()
    await t.connector(Name="Contoso Out", DNSRoutingEnabled="false", SmartHosts=f"[127.0.0.1]:{contoso_relay.port}",
                      AddressSpaces="*", SenderDomains="contoso.test")
    await t.connector(Name="Fabrikam Out", DNSRoutingEnabled="false", SmartHosts=f"[127.0.0.1]:{fabrikam_relay.port}",
                      AddressSpaces="*", SenderDomains="fabrikam.test")
    await submit(t.port, "alice@contoso.test", ["x@example.test"])
    await submit(t.port, "fred@fabrikam.test", ["y@example.test"])
    await async_wait_for(lambda: contoso_relay.messages and fabrikam_relay.messages, what="both deliveries")
    assert [m.mail_from for m in contoso_relay.messages] == ["alice@contoso.test"]
    assert [m.mail_from for m in fabrikam_relay.messages] == ["fred@fabrikam.test"]


async def test_expiry_ndr_quotes_last_error(transport_factory: Any, sink: Sink) -> None:
    t = await transport_factory(queue={"message_expiration_timeout": "2s", "delay_notification_timeout": "1h"})
    await t.connector(Name="Dead", DNSRoutingEnabled="false", SmartHosts=f"[127.0.0.1]:{free_port()}",
                      AddressSpaces="fabrikam.test")
    await t.connector(Name="Home", DNSRoutingEnabled="false", SmartHosts=f"[127.0.0.1]:{sink.port}",
                      AddressSpaces="contoso.test")
    await submit(t.port, "alice@contoso.test", ["bob@fabrikam.test"])
    [ndr] = await async_wait_for(lambda: sink.for_recipient("alice@contoso.test"), what="expiry NDR")
    status = _delivery_status(ndr.data)
    assert "Status: 4.4.7" in status and "QUEUE.Expired" in status
    assert "441 4.4.1" in status  # the last error is quoted


async def test_delay_dsn_is_sent_once(transport_factory: Any, sink: Sink) -> None:
    t = await transport_factory(queue={"delay_notification_timeout": "1s", "message_expiration_timeout": "1h"})
    await t.connector(Name="Dead", DNSRoutingEnabled="false", SmartHosts=f"[127.0.0.1]:{free_port()}",
                      AddressSpaces="fabrikam.test")
    await t.connector(Name="Home", DNSRoutingEnabled="false", SmartHosts=f"[127.0.0.1]:{sink.port}",
                      AddressSpaces="contoso.test")
    sent = await submit(t.port, "alice@contoso.test", ["bob@fabrikam.test"])
    [dsn] = await async_wait_for(lambda: sink.for_recipient("alice@contoso.test"), what="delay DSN")
    status = _delivery_status(dsn.data)
    assert "Action: delayed" in status
    assert dsn.message["Subject"].startswith("Delivery delayed:")
    # More retries pass; no second delay DSN.
    async def retried_more() -> bool:
        rows = await t.store.queues.messages()
        return any(r.attempts >= 4 for info, rs in rows if info.id == sent.queue_id for r in rs)
    await async_wait_for(retried_more, what="more retries")
    assert len(sink.for_recipient("alice@contoso.test")) == 1


async def test_shutdown_releases_leases_for_the_next_run(transport_factory: Any, sink_factory: Any) -> None:
    import threading

    stall = threading.Event()
    slow = sink_factory(stall=stall)
    t = await transport_factory(server={"shutdown_timeout": "0.5s"})
    await t.connector(Name="Slow", DNSRoutingEnabled="false", SmartHosts=f"[127.0.0.1]:{slow.port}", AddressSpaces="*")
    sent = await submit(t.port, "alice@contoso.test", ["bob@fabrikam.test"])
    await async_wait_for(lambda: slow.handler.helos, what="delivery in flight")
    await t.service.stop()
    rows = {r.address: r for info, rs in await _reopen_messages(t) for r in rs if info.id == sent.queue_id}
    assert rows["bob@fabrikam.test"].status in ("ready", "retry")
    assert rows["bob@fabrikam.test"].lease_owner is None
    stall.set()


async def _reopen_messages(t: Any) -> Any:
    from mailhop.store.sqlite import SqliteStore

    store = await SqliteStore.open(t.service.settings.sqlite_path)
    try:
        return await store.queues.messages()
    finally:
        await store.close()
