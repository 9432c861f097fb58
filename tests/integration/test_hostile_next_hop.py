"""A hostile next hop (or a man in the middle before it) cannot inject, exhaust memory or stall delivery.

Each test plays the attack on loopback with ``tests.support.hostile.HostileServer``
against the real SMTP client, and where the damage was done above it (leaked pool slots,
recipients left leased), against a whole in-process transport.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from mailhop.errors import ConnectionFailure
from mailhop.model.message import RETRY
from mailhop.smtp.client import ClientConnection
from mailhop.smtp.session import TlsPlan
from tests.support.client import submit
from tests.support.hostile import HostileServer
from tests.support.wait import async_wait_for
from tests.unit.smtp_helpers import make_tls_material

EHLO_WITH_STARTTLS = b"250-hostile.test\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 SIZE 100000000\r\n"


@pytest.fixture
async def hostile() -> AsyncIterator[list[HostileServer]]:
    servers: list[HostileServer] = []
    yield servers
    for s in servers:
        await s.stop()


async def start(servers: list[HostileServer], script: dict[str, Any], **kw: Any) -> HostileServer:
    server = await HostileServer(script, **kw).start()
    servers.append(server)
    return server


async def open_to(server: HostileServer, tls: TlsPlan | None = None) -> ClientConnection:
    return await ClientConnection.open("hostile.test", "127.0.0.1", server.port, "exch01.contoso.test",
                                       tls=tls or TlsPlan(starttls=False), connect_timeout=10, command_timeout=10)


async def test_replies_appended_to_the_starttls_220_end_the_connection(hostile: list[HostileServer]) -> None:
    material = make_tls_material()
    # A man in the middle appends a forged EHLO answer (SIZE 1) in clear text behind the 220;
    # the real server then does a proper TLS handshake with a certificate the client trusts.
    server = await start(hostile, {"EHLO": EHLO_WITH_STARTTLS,
                                   "STARTTLS": b"220 2.0.0 ready\r\n250-hostile.test\r\n250 SIZE 1\r\n"},
                         tls=material.server)
    plan = TlsPlan(required=True, context=material.client, server_hostname="localhost")
    with pytest.raises(ConnectionFailure) as refused:
        await open_to(server, plan)
    assert refused.value.reply.code == 451 and "after its 220 to STARTTLS" in refused.value.reply.text
    assert refused.value.stage == "starttls"


async def test_a_reply_line_over_the_limit_is_a_temporary_failure_of_the_transaction(
        hostile: list[HostileServer]) -> None:
    server = await start(hostile, {"EHLO": b"250 hostile.test\r\n", "MAIL": b"250 " + b"x" * 70_000 + b"\r\n"})
    conn = await open_to(server)
    tx = await conn.send("alice@contoso.test", ["bob@fabrikam.test"], b"Subject: x\r\n\r\nhi\r\n")
    assert tx.failure is not None and tx.failure.temporary
    assert tx.recipients["bob@fabrikam.test"].temporary
    assert not conn.usable  # the hop is out of step: the connection is dropped, never read on


async def test_a_reply_of_too_many_lines_is_a_protocol_error_not_read_as_the_next_replies(
        hostile: list[HostileServer]) -> None:
    many = b"".join(b"250-line %d\r\n" % i for i in range(150)) + b"250 2.1.5 ok\r\n"
    server = await start(hostile, {"EHLO": b"250-hostile.test\r\n250 PIPELINING\r\n", "RCPT": many})
    conn = await open_to(server)
    tx = await conn.send("alice@contoso.test", ["a@fabrikam.test", "b@fabrikam.test"], b"Subject: x\r\n\r\nhi\r\n")
    assert tx.failure is not None and tx.failure.temporary
    assert {r.code for r in tx.recipients.values()} == {tx.failure.code}  # no RCPT reply moved to another
    assert not conn.usable


async def test_a_broken_next_hop_leaks_no_slot_and_leaves_no_recipient_leased(
        transport_factory: Any, hostile: list[HostileServer]) -> None:
    server = await start(hostile, {"EHLO": b"250 hostile.test\r\n", "MAIL": b"250 " + b"x" * 70_000 + b"\r\n"})
    t = await transport_factory()
    await t.connector(Name="Hostile", DNSRoutingEnabled="false", SmartHosts=f"[127.0.0.1]:{server.port}",
                      AddressSpaces="*")
    sent = await submit(t.port, "alice@contoso.test", ["bob@fabrikam.test"])

    async def deferred() -> bool:
        rows = (await t.store.queues.get_message(sent.queue_id))[1]
        return rows[0].status == RETRY

    await async_wait_for(deferred, what="the recipient deferred, not left leased")
    scheduler = t.service.scheduler
    await async_wait_for(lambda: scheduler.pool.connections == 0 and not scheduler.pool.hops,
                         what="the pool's slots released")
    assert scheduler.in_flight == 0
    assert not scheduler.poison.journal.active  # the crash journal entry was closed
    [row] = (await t.store.queues.get_message(sent.queue_id))[1]
    assert row.last_error is not None and row.last_error.startswith("4")
    assert [e["EventId"] for e in t.tracking() if e.get("InternalMessageId") == sent.queue_id][-1] == "DEFER"


@pytest.mark.parametrize("ehlo", [b"250-hostile.test\r\n250 PIPELINING\r\n", b"250 hostile.test\r\n"],
                         ids=["pipelined", "sequential"])
async def test_a_250_to_data_is_a_temporary_failure_not_a_delivery(hostile: list[HostileServer], ehlo: bytes) -> None:
    server = await start(hostile, {"EHLO": ehlo, "DATA": b"250 2.0.0 ok\r\n"})
    conn = await open_to(server)
    tx = await conn.send("alice@contoso.test", ["a@fabrikam.test", "b@fabrikam.test"], b"Subject: x\r\n\r\nhi\r\n")
    assert tx.failure is not None and (tx.failure.code, tx.failure.enhanced) == (451, "4.5.0")
    assert all(r.temporary for r in tx.recipients.values())
    assert not conn.usable  # out of step: dropped, not RSET and reused
    assert not any(line.startswith(b"Subject:") for line in server.commands)  # no body was sent


async def test_a_3xx_after_the_body_is_a_temporary_failure(hostile: list[HostileServer]) -> None:
    server = await start(hostile, {"EHLO": b"250 hostile.test\r\n", "DOT": b"354 more please\r\n"})
    conn = await open_to(server)
    tx = await conn.send("alice@contoso.test", ["a@fabrikam.test"], b"Subject: x\r\n\r\nhi\r\n")
    assert tx.failure is not None and (tx.failure.code, tx.failure.enhanced) == (451, "4.5.0")
    assert tx.recipients["a@fabrikam.test"].temporary
    assert not conn.usable
