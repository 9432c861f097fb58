"""CHUNKING (RFC 3030) end to end: mailhop sends BDAT to a next hop that offers it, and takes it.

Two mailhop servers in this process: A relays to B (which offers CHUNKING), B to a sink. B's
receive protocol log shows the BDAT commands; the sink gets the message byte for byte (lines
that begin with a dot included: BDAT carries no dot-stuffing), for a small message (one
``BDAT n LAST``) and for one stored in parts (a chunk per part, then ``BDAT 0 LAST``).
Postfix (which offers CHUNKING) takes the same large message intact.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.client import make_message, submit
from tests.support.net import free_port
from tests.support.postfix import Postfix, start_throwaway, stop_throwaway
from tests.support.sink import Sink
from tests.support.wait import async_wait_for


def big_body(size: int) -> str:
    lines = []
    total = 0
    i = 0
    while total < size:
        line = f".{i:08d} a line that begins with a dot, as dot-stuffing would change it\r\n"
        lines.append(line)
        total += len(line)
        i += 1
    return "".join(lines)


async def relay_pair(transport_factory: Any, sink: Sink) -> tuple[Any, Any]:
    b_port = free_port()
    b = await transport_factory(receive_connectors=[{"name": "From A", "bind": f"127.0.0.1:{b_port}",
                                                     "remote_ip_ranges": ["127.0.0.0/8"],
                                                     "protocol_logging_level": "Verbose"}])
    await b.connector(Name="Out", DNSRoutingEnabled="false", SmartHosts=f"[127.0.0.1]:{sink.port}", AddressSpaces="*")
    a = await transport_factory()
    await a.connector(Name="To B", DNSRoutingEnabled="false", SmartHosts=f"[127.0.0.1]:{b_port}", AddressSpaces="*")
    return a, b


def receive_log(t: Any) -> str:
    for plog in t.service.logs:
        plog.flush()
    folder = t.service.settings.data_dir / "logs" / "ProtocolLog" / "SmtpReceive"
    return "".join(p.read_text() for p in sorted(folder.glob("*.log")))


async def test_bdat_between_two_mailhop_servers_small_and_in_parts(transport_factory: Any, sink: Sink) -> None:
    a, b = await relay_pair(transport_factory, sink)
    for size, to in ((2_000, "small@fabrikam.test"), (3 * 1024 * 1024, "large@fabrikam.test")):
        data = make_message(subject=f"{size} bytes", body=big_body(size), to=to)
        await submit(a.port, "alice@contoso.test", [to], data)
        [got] = await async_wait_for(lambda to=to: sink.for_recipient(to), timeout=60, what=f"the {size} byte message")
        body = got.data.split(b"\r\n\r\n", 1)[1]
        assert hashlib.sha256(body).hexdigest() == hashlib.sha256(data.split(b"\r\n\r\n", 1)[1]).hexdigest()
    commands = re.findall(r",<,((?:BDAT|DATA)[^,\r\n]*)", receive_log(b))
    # The small message: one chunk; the large one, stored in 1 MiB parts: a chunk a part, then BDAT 0 LAST.
    assert re.fullmatch(r"BDAT \d+ LAST", commands[0]), commands
    assert commands[1:4] == ["BDAT 1048576"] * 3 and re.fullmatch(r"BDAT \d+", commands[4]), commands
    assert commands[5:] == ["BDAT 0 LAST"], commands


@pytest.fixture
def postfix(sink: Sink) -> Iterator[Postfix]:
    pf = start_throwaway(f"[127.0.0.1]:{sink.port}")
    yield pf
    stop_throwaway(pf)


async def test_postfix_takes_a_large_message_in_chunks_intact(transport_factory: Any, sink: Sink,
                                                              postfix: Postfix) -> None:
    t = await transport_factory()
    await t.connector(Name="Relay", DNSRoutingEnabled="false", SmartHosts=f"[127.0.0.1]:{postfix.listeners[0].port}",
                      AddressSpaces="*")
    data = make_message(subject="big", body=big_body(3 * 1024 * 1024), to="bob@fabrikam.test")
    await submit(t.port, "alice@contoso.test", ["bob@fabrikam.test"], data)
    [got] = await async_wait_for(lambda: sink.for_recipient("bob@fabrikam.test"), timeout=60,
                                 what="the message through Postfix")
    assert got.data.split(b"\r\n\r\n", 1)[1] == data.split(b"\r\n\r\n", 1)[1]


async def test_binarymime_is_relayed_in_chunks_and_fails_5_6_3_where_it_cannot_go(transport_factory: Any,
                                                                                  sink: Sink) -> None:
    # client -> A (BINARYMIME on) -> B (BINARYMIME on) -> the sink, which offers neither CHUNKING nor
    # BINARYMIME: B fails the recipient with 5.6.3 and its NDR (headers only) reaches the sender.
    b_port = free_port()
    b = await transport_factory(receive_connectors=[{"name": "From A", "bind": f"127.0.0.1:{b_port}",
                                                     "remote_ip_ranges": ["127.0.0.0/8"], "binary_mime_enabled": True,
                                                     "protocol_logging_level": "Verbose"}])
    await b.connector(Name="Out", DNSRoutingEnabled="false", SmartHosts=f"[127.0.0.1]:{sink.port}", AddressSpaces="*")
    a_port = free_port()
    a = await transport_factory(receive_connectors=[{"name": "Apps", "bind": f"127.0.0.1:{a_port}",
                                                     "remote_ip_ranges": ["127.0.0.0/8"], "binary_mime_enabled": True}])
    await a.connector(Name="To B", DNSRoutingEnabled="false", SmartHosts=f"[127.0.0.1]:{b_port}", AddressSpaces="*")
    binary = (b"From: <alice@contoso.test>\r\nTo: <bob@fabrikam.test>\r\nSubject: binary\r\n"
              b"Content-Type: application/octet-stream\r\n\r\n\x00\x01\rbare\nsecret-7777\r")
    reader, writer = await asyncio.open_connection("127.0.0.1", a_port)
    try:
        await reader.readline()
        writer.write(b"EHLO client.test\r\n")
        while not (await reader.readline()).startswith(b"250 "):
            pass
        writer.write(b"MAIL FROM:<alice@contoso.test> BODY=BINARYMIME\r\nRCPT TO:<bob@fabrikam.test>\r\n"
                     + f"BDAT {len(binary)} LAST\r\n".encode() + binary)
        replies = [await reader.readline() for _ in range(3)]
        assert all(r.startswith(b"250") for r in replies), replies
    finally:
        writer.close()
    [ndr] = await async_wait_for(lambda: [m for m in sink.messages if m.mail_from in ("", "<>")], timeout=60,
                                 what="B's NDR")
    assert b"5.6.3" in ndr.data and b"BINARYMIME" in ndr.data
    assert b"text/rfc822-headers" in ndr.data and b"secret-7777" not in ndr.data
    assert not sink.for_recipient("bob@fabrikam.test")
    log = receive_log(b)
    assert "BODY=BINARYMIME" in log and re.search(r"BDAT \d+ LAST", log), log[-2000:]
