"""DKIM signing end to end: mailhop signs at receive, delivers over MX, and OpenDKIM and dkimpy verify.

A dnsmasq serves fabrikam.test's MX (a capture sink on 127.0.0.2) and contoso.test's
(127.0.0.5, where NDRs go), and, once a test publishes them, the selectors' TXT records
as ``mailhop dkim`` prints them.  What the sink received is handed to OpenDKIM's test
mode and to dkimpy, both asking the same dnsmasq.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

import pytest

from mailhop.dkim.signer import SIGNED
from mailhop.services.dkim import DkimService
from tests.support.client import make_message, submit
from tests.support.dkim_verify import dkimpy, opendkim
from tests.support.dns import DkimZone, shared_tcp_port
from tests.support.sink import Captured, Sink
from tests.support.wait import async_wait_for

MX, HOME = "127.0.0.2", "127.0.0.5"
SENDER = "alice@contoso.test"
BASE: dict[str, Any] = {
    "mx": {"fabrikam.test": [(10, "mx.fabrikam.test")], "contoso.test": [(10, "mx.contoso.test")]},
    "a": {"mx.fabrikam.test": MX, "mx.contoso.test": HOME},
}


@pytest.fixture
def zone() -> Iterator[DkimZone]:
    z = DkimZone(**BASE)
    yield z
    z.server.stop()


@pytest.fixture
def port() -> int:
    return shared_tcp_port([MX, HOME])


async def start(transport_factory: Any, zone: DkimZone, port: int, **sections: Any) -> Any:
    t = await transport_factory(dns={"nameservers": [zone.server.nameserver], "timeout": "1s", "lifetime": "2s"},
                                **sections)
    await t.connector(Name="To Internet", AddressSpaces="*", Port=str(port))
    return t


def dkim_service(t: Any) -> DkimService:
    return t.service.services.dkim  # type: ignore[no-any-return]


async def keys_reloaded(t: Any) -> None:
    await t.service.keyring.refresh()


def signatures(message: bytes) -> list[dict[str, str]]:
    head = message.split(b"\r\n\r\n", 1)[0].decode()
    out = []
    for m in re.finditer(r"^DKIM-Signature:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head, re.M | re.I):
        value = re.sub(r"\s+", "", m.group(1))
        out.append(dict(part.split("=", 1) for part in value.split(";") if "=" in part))
    return out


async def delivered(sink: Sink, count: int = 1) -> list[Captured]:
    return await async_wait_for(lambda: sink.messages if len(sink.messages) >= count else None,
                                what=f"{count} message(s) at the MX")


FULL_HEADERS = {
    "Cc": "<carol@fabrikam.test>", "Date": "Thu, 03 Dec 2026 10:00:00 +0000", "Message-ID": "<m1@contoso.test>",
    "Reply-To": "<replies@contoso.test>", "In-Reply-To": "<m0@fabrikam.test>", "References": "<m0@fabrikam.test>",
    "MIME-Version": "1.0", "Content-Type": "text/plain; charset=utf-8", "Content-Transfer-Encoding": "8bit",
    "List-Id": "News <news.contoso.test>", "List-Unsubscribe": "<https://contoso.test/u/1>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click", "X-Not-Signed": "free to change",
}


async def test_both_signatures_verify_with_opendkim_and_dkimpy_and_cover_the_listed_headers(
        transport_factory: Any, sink_factory: Any, zone: DkimZone, port: int) -> None:
    mx = sink_factory(host=MX, port=port)
    t = await start(transport_factory, zone, port)
    config = await dkim_service(t).new("contoso.test")
    zone.publish(config)
    await keys_reloaded(t)
    body = "Hello  there, \t\r\nwith   runs of  whitespace   \r\n\r\n\r\n"
    await submit(t.port, SENDER, ["bob@fabrikam.test"],
                 make_message(subject="Signed  news", body=body, headers=FULL_HEADERS))
    [got] = await delivered(mx)
    assert opendkim(got.data, zone.server) == {"selector1": "pass", "selector1-ed25519": "pass"}
    assert dkimpy(got.data, zone.server) == {"selector1": True, "selector1-ed25519": True}
    sigs = signatures(got.data)
    assert [(s["a"], s["s"], s["d"], s["c"]) for s in sigs] == [
        ("rsa-sha256", "selector1", "contoso.test", "relaxed/relaxed"),
        ("ed25519-sha256", "selector1-ed25519", "contoso.test", "relaxed/relaxed")]
    expected = ["from", "from", "to", "cc", "subject", "date", "message-id", "reply-to", "in-reply-to",
                "references", "mime-version", "content-type", "content-transfer-encoding", "list-id",
                "list-unsubscribe", "list-unsubscribe", "list-unsubscribe-post", "list-unsubscribe-post"]
    assert [s["h"].split(":") for s in sigs] == [expected, expected]
    assert set(expected) == set(SIGNED)
    assert all("l" not in s for s in sigs)
    # The signatures are the first fields, above mailhop's own Received:.
    assert got.data.startswith(b"DKIM-Signature:")
    assert got.data.index(b"\r\nReceived:") > got.data.rindex(b"\r\nDKIM-Signature:")


async def test_a_relay_that_changes_the_body_or_a_signed_header_breaks_the_signatures(
        transport_factory: Any, sink_factory: Any, zone: DkimZone, port: int) -> None:
    mx = sink_factory(host=MX, port=port)
    t = await start(transport_factory, zone, port)
    zone.publish(await dkim_service(t).new("contoso.test"))
    await keys_reloaded(t)
    await submit(t.port, SENDER, ["bob@fabrikam.test"], make_message(body="Pay 10 EUR.\r\n", headers=FULL_HEADERS))
    [got] = await delivered(mx)
    assert set(opendkim(got.data, zone.server).values()) == {"pass"}
    body_changed = got.data.replace(b"Pay 10 EUR.", b"Pay 90 EUR.")
    assert all(v.startswith("fail") for v in opendkim(body_changed, zone.server).values())
    assert dkimpy(body_changed, zone.server) == {"selector1": False, "selector1-ed25519": False}
    # An unsigned field may change; a second From: (over-signed) may not be added.
    free = got.data.replace(b"X-Not-Signed: free to change", b"X-Not-Signed: changed")
    assert set(opendkim(free, zone.server).values()) == {"pass"}
    head, rest = got.data.split(b"\r\n\r\n", 1)
    second_from = head + b"\r\nFrom: <ceo@contoso.test>\r\n\r\n" + rest
    assert dkimpy(second_from, zone.server) == {"selector1": False, "selector1-ed25519": False}


async def test_a_large_spooled_message_is_signed_from_the_stream(
        transport_factory: Any, sink_factory: Any, zone: DkimZone, port: int) -> None:
    mx = sink_factory(host=MX, port=port)
    t = await start(transport_factory, zone, port)
    zone.publish(await dkim_service(t).new("contoso.test", algorithms="ed25519-sha256,rsa-sha256"))
    await keys_reloaded(t)
    line = "word  \t word " * 70 + "  \r\n"  # ~1 KB lines with runs and trailing whitespace
    body = line * 3000 + "\r\n" * 5          # ~2.7 MB: far past the spool's in-memory part
    await submit(t.port, SENDER, ["bob@fabrikam.test"], make_message(body=body))
    [got] = await delivered(mx)
    assert len(got.data) > 2_500_000
    assert opendkim(got.data, zone.server) == {"selector1": "pass", "selector1-ed25519": "pass"}


async def test_only_domains_with_a_config_are_signed_and_sub_domains_when_asked(
        transport_factory: Any, sink_factory: Any, zone: DkimZone, port: int) -> None:
    mx = sink_factory(host=MX, port=port)
    t = await start(transport_factory, zone, port)
    zone.publish(await dkim_service(t).new("contoso.test", algorithms="rsa-sha256", key_size=1024))
    await keys_reloaded(t)
    for sender in ("alice@fabrikam.test", "news@mail.contoso.test"):
        await submit(t.port, sender, ["bob@fabrikam.test"], make_message(sender=sender))
    unsigned = await delivered(mx, 2)
    assert [signatures(m.data) for m in unsigned] == [[], []]
    await dkim_service(t).set("contoso.test", sub_domains=True)
    await keys_reloaded(t)
    await submit(t.port, "news@mail.contoso.test", ["bob@fabrikam.test"],
                 make_message(sender="news@mail.contoso.test"))
    got = (await delivered(mx, 3))[2]
    assert [s["d"] for s in signatures(got.data)] == ["contoso.test"]
    assert opendkim(got.data, zone.server) == {"selector1": "pass"}
    await dkim_service(t).set("contoso.test", enabled=False)
    await keys_reloaded(t)
    await submit(t.port, SENDER, ["bob@fabrikam.test"])
    assert signatures((await delivered(mx, 4))[3].data) == []


async def test_rotation_waits_for_dns_and_mail_signed_before_still_verifies(
        transport_factory: Any, sink_factory: Any, zone: DkimZone, port: int) -> None:
    t = await start(transport_factory, zone, port)
    service = dkim_service(t)
    zone.publish(await service.new("contoso.test"))
    await keys_reloaded(t)
    # A message signed with selector 1 that waits in the queue: nothing listens at the MX yet.
    await submit(t.port, SENDER, ["early@fabrikam.test"], make_message(subject="before the rotation"))
    rotated = await service.rotate("contoso.test")
    assert (rotated["ActiveSelector"], rotated["PendingSelector"]) == ("selector1", "selector2")
    shown = await service.show("contoso.test")  # the new keys are not in DNS: still selector 1
    assert (shown["ActiveSelector"], shown["PendingSelector"], shown["Status"]) == ("selector1", "selector2", "Valid")
    assert "selector2._domainkey.contoso.test: no such name in DNS" in shown["StatusDetail"]
    await keys_reloaded(t)
    mx = sink_factory(host=MX, port=port)
    await submit(t.port, SENDER, ["still1@fabrikam.test"], make_message(subject="still selector 1"))
    zone.publish(rotated)  # now selector 2 is published (selector 1 stays)
    switched = await service.show("contoso.test")
    assert (switched["ActiveSelector"], switched["PendingSelector"]) == ("selector2", None)
    assert switched["InactiveSelectorRemovableAfter"] is not None
    await keys_reloaded(t)
    await submit(t.port, SENDER, ["late@fabrikam.test"], make_message(subject="after the switch"))
    got = {m.rcpt_tos[0]: m for m in await delivered(mx, 3)}
    for rcpt, selectors in (("early@fabrikam.test", ("selector1", "selector1-ed25519")),
                            ("still1@fabrikam.test", ("selector1", "selector1-ed25519")),
                            ("late@fabrikam.test", ("selector2", "selector2-ed25519"))):
        data = got[rcpt].data
        assert [s["s"] for s in signatures(data)] == list(selectors), rcpt
        assert opendkim(data, zone.server) == dict.fromkeys(selectors, "pass"), rcpt


async def test_ndrs_are_signed_for_the_postmasters_domain(
        transport_factory: Any, sink_factory: Any, zone: DkimZone, port: int) -> None:
    sink_factory(host=MX, port=port, reject={"nobody@fabrikam.test"})
    home = sink_factory(host=HOME, port=port)
    t = await start(transport_factory, zone, port, server={"postmaster": "postmaster@contoso.test"})
    zone.publish(await dkim_service(t).new("contoso.test"))
    await keys_reloaded(t)
    await submit(t.port, SENDER, ["nobody@fabrikam.test"])
    [ndr] = await async_wait_for(lambda: home.for_recipient(SENDER), what="the NDR")
    assert ndr.mail_from == ""
    assert opendkim(ndr.data, zone.server) == {"selector1": "pass", "selector1-ed25519": "pass"}


async def test_a_message_already_signed_by_the_same_key_is_not_signed_again(
        transport_factory: Any, sink_factory: Any, zone: DkimZone, port: int) -> None:
    mx = sink_factory(host=MX, port=port)
    t = await start(transport_factory, zone, port)
    zone.publish(await dkim_service(t).new("contoso.test"))
    await keys_reloaded(t)
    await submit(t.port, SENDER, ["bob@fabrikam.test"], make_message(headers=FULL_HEADERS))
    [first] = await delivered(mx)
    await submit(t.port, SENDER, ["bob@fabrikam.test"], first.data)  # through a second hop of ours
    second = (await delivered(mx, 2))[1]
    assert [s["s"] for s in signatures(second.data)] == ["selector1", "selector1-ed25519"]
    assert opendkim(second.data, zone.server) == {"selector1": "pass", "selector1-ed25519": "pass"}


async def test_a_config_whose_keys_cannot_be_opened_defers_mail_rather_than_sending_it_unsigned(
        transport_factory: Any, sink_factory: Any, zone: DkimZone, port: int) -> None:
    sink_factory(host=MX, port=port)
    t = await start(transport_factory, zone, port)
    await dkim_service(t).new("contoso.test", algorithms="ed25519-sha256")
    await t.store.dkim.update("contoso.test", lambda c: dataclasses.replace(c),
                              {"selector1-ed25519": "fernet:not-a-sealed-key"})
    await keys_reloaded(t)
    import aiosmtplib

    with pytest.raises(aiosmtplib.SMTPDataError) as info:
        await submit(t.port, SENDER, ["bob@fabrikam.test"])
    assert (info.value.code, info.value.message) == (
        451, "4.3.5 Temporary failure: the message cannot be signed, try again later")
    assert await t.store.queues.messages() == []
    # Other domains are not held up.
    await submit(t.port, "alice@fabrikam.test", ["bob@fabrikam.test"], make_message(sender="alice@fabrikam.test"))
