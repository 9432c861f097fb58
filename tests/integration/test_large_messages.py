"""Large messages: spooled as they arrive, stored and sent in parts, byte for byte.

A message beyond the spool's memory threshold (256 KiB) goes to an unnamed spool file,
is committed in 1 MiB parts and leaves in parts; what the next hop gets must be exactly
what was sent, after the Received: stamp (and Message-ID/Date where they were missing).
"""

from __future__ import annotations

from typing import Any

import aiosmtplib
import pytest

from mailhop.store.base import PART_SIZE
from tests.support.client import submit
from tests.support.net import free_port
from tests.support.sink import Sink
from tests.support.wait import async_wait_for


def big_message(size: int, headers: bytes = b"Subject: big\r\nMessage-ID: <big@contoso.test>\r\n"
                b"Date: Thu, 03 Dec 2026 06:00:00 +0000\r\n") -> bytes:
    # Lines starting with dots: stuffed on the wire in both directions, and unstuffed again.
    line = b".line with a leading dot\r\nplain line\r\n..two\r\n"
    body = line * (size // len(line) + 1)
    return b"From: <alice@contoso.test>\r\nTo: <bob@fabrikam.test>\r\n" + headers + b"\r\n" + body


async def relay(transport_factory: Any, sink: Sink, **sections: Any) -> Any:
    t = await transport_factory(**sections)
    await t.connector(Name="Relay", DNSRoutingEnabled="false", SmartHosts=f"[127.0.0.1]:{sink.port}",
                      AddressSpaces="*")
    return t


@pytest.mark.parametrize("size", [300 * 1024, 3 * PART_SIZE + 123])
async def test_a_large_message_arrives_byte_for_byte(transport_factory: Any, sink: Sink, size: int) -> None:
    t = await relay(transport_factory, sink)
    data = big_message(size)
    sent = await submit(t.port, "alice@contoso.test", ["bob@fabrikam.test"], data)
    [got] = await async_wait_for(lambda: sink.messages, what="the large message at the next hop", timeout=60)
    assert got.data.startswith(b"Received: from ")
    assert got.data.endswith(data), "the message changed on the way"
    assert f"id {sent.queue_id}".encode() in got.data[:600]
    assert len(got.data) - len(data) < 400  # only the Received: stamp was added
    assert await async_wait_for(lambda: _empty(t), what="the queue to empty")


async def test_missing_message_id_and_date_are_added_at_the_end_of_the_header_block(
        transport_factory: Any, sink: Sink) -> None:
    t = await relay(transport_factory, sink)
    data = big_message(2 * PART_SIZE, headers=b"Subject: no ids\r\n")
    await submit(t.port, "alice@contoso.test", ["bob@fabrikam.test"], data)
    [got] = await async_wait_for(lambda: sink.messages, what="the message at the next hop", timeout=60)
    head, body = got.data.split(b"\r\n\r\n", 1)
    last_two = head.split(b"\r\n")[-2:]
    assert last_two[0].startswith(b"Message-ID: <") and last_two[1].startswith(b"Date: "), last_two
    assert body == data.split(b"\r\n\r\n", 1)[1]


async def test_a_header_block_that_does_not_end_within_a_mebibyte_is_refused(
        transport_factory: Any, sink: Sink) -> None:
    t = await relay(transport_factory, sink)
    headers = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"y" * 100) for i in range(12000))  # 1.3 MB of headers
    data = b"Subject: huge headers\r\n" + headers + b"\r\nbody\r\n"
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await submit(t.port, "alice@contoso.test", ["bob@fabrikam.test"], data)
    assert (refused.value.code, refused.value.message) == (552, "5.3.4 Header size exceeds fixed maximum size")
    assert await t.store.queues.messages() == []


async def test_over_the_size_limit_is_refused_while_streaming(transport_factory: Any, sink: Sink) -> None:
    t = await relay(transport_factory, sink, receive_connectors=[{
        "name": "Small", "bind": f"127.0.0.1:{free_port()}", "remote_ip_ranges": ["127.0.0.0/8"],
        "max_message_size": "1MB"}])
    with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
        await submit(t.port, "alice@contoso.test", ["bob@fabrikam.test"], big_message(3 * PART_SIZE))
    assert refused.value.code == 552
    assert await t.store.queues.messages() == []


async def _empty(t: Any) -> bool:
    return await t.store.queues.messages() == []
