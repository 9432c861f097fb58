"""REQUIRETLS (RFC 8689): taken only inside TLS, and such a message leaves only over validated TLS
to next hops that offer REQUIRETLS; otherwise an NDR 5.7.30 that returns nothing of it.

The next hops are aiosmtpd receivers (tests/support/tlsfix.py), some offering REQUIRETLS after
STARTTLS, with certificates from a test CA mailhop trusts (``[tls] ca_file``) or from one it
does not; dnsmasq gives the MX records.  The sender's domain has its own plain sink, where the
NDRs arrive.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from tests.support.client import make_message
from tests.support.dns import DnsServer, shared_tcp_port
from tests.support.net import free_port
from tests.support.sink import Sink
from tests.support.tlsfix import Pki, Receiver
from tests.support.wait import async_wait_for, failed_attempt

# host -> (address, offers REQUIRETLS, certificate from the trusted CA)
HOSTS = {
    "mx.ok.test": ("127.0.0.81", True, True),
    "mx.noreq.test": ("127.0.0.82", False, True),
    "mx.rogue.test": ("127.0.0.83", True, False),
    "mx1.mixed.test": ("127.0.0.85", False, True),
    "mx2.mixed.test": ("127.0.0.86", True, True),
}
NDR_HOST = "127.0.0.84"


class World:
    def __init__(self, root: Path) -> None:
        self.pki = Pki(root / "pki")
        self.port = shared_tcp_port([NDR_HOST, *(ip for ip, _, _ in HOSTS.values())])
        self.receivers = {}
        for host, (ip, offers, trusted) in HOSTS.items():
            leaf = self.pki.leaf(host, host, ca=None if trusted else self.pki.rogue)
            self.receivers[host] = Receiver(starttls=self.pki.server_context(leaf), host=ip, port=self.port,
                                            requiretls=offers).start()
        self.ndr_sink = Sink(NDR_HOST, self.port).start()
        mx = {"ok.test": [(10, "mx.ok.test")], "noreq.test": [(10, "mx.noreq.test")],
              "rogue.test": [(10, "mx.rogue.test")], "mixed.test": [(10, "mx1.mixed.test"), (20, "mx2.mixed.test")],
              "contoso.test": [(10, "mail.contoso.test")]}
        a = {host: ip for host, (ip, _, _) in HOSTS.items()} | {"mail.contoso.test": NDR_HOST}
        self.dns = DnsServer(mx=mx, a=a).start()
        self.server_leaf = self.pki.leaf("exch01", "exch01.contoso.test")

    def got(self, host: str, to: str) -> list[Any]:
        return [a for a in self.receivers[host].arrivals if to in a.rcpt_tos]

    def stop(self) -> None:
        for r in self.receivers.values():
            r.stop()
        self.ndr_sink.stop()
        self.dns.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(tmp_path_factory.mktemp("requiretls"))
    yield w
    w.stop()


async def transport(transport_factory: Any, world: World) -> Any:
    t = await transport_factory(
        dns={"nameservers": [world.dns.nameserver]}, tls={"ca_file": str(world.pki.ca_file)},
        receive_connectors=[{"name": "Client Relay EXCH01", "bind": f"127.0.0.1:{free_port()}",
                             "remote_ip_ranges": ["127.0.0.0/8"], "tls_certificate": str(world.server_leaf.cert_file),
                             "tls_key": str(world.server_leaf.key_file)}])
    await t.connector(Name="To Internet", Usage="Internet", AddressSpaces="*", Port=str(world.port))
    return t


async def send(t: Any, domain: str, requiretls: bool = True, subject: str = "Quarterly numbers",
               body: str = "The secret is 4242.\r\n") -> tuple[int, str]:
    to = f"{uuid.uuid4().hex[:10]}@{domain}"
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=t.port, start_tls=False)
    await smtp.connect()
    try:
        await smtp.starttls(validate_certs=False)
        _, text = await smtp.sendmail("alice@contoso.test", [to], make_message(subject, body, sender="alice@contoso.test",
                                                                               to=to),
                                      mail_options=["REQUIRETLS"] if requiretls else [])
    finally:
        await smtp.quit()
    m = re.search(r"queued as (\d+)", text)
    assert m, text
    return int(m.group(1)), to


async def sent_event(t: Any, qid: int) -> dict[str, Any]:
    [event] = await async_wait_for(
        lambda: [e for e in t.tracking() if e["EventId"] == "SEND" and e.get("InternalMessageId") == qid],
        what="the SEND event")
    return event


async def test_requiretls_is_offered_and_taken_only_inside_tls(transport_factory: Any, world: World) -> None:
    t = await transport(transport_factory, world)
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=t.port, start_tls=False)
    await smtp.connect()
    try:
        await smtp.ehlo()
        assert not smtp.supports_extension("requiretls")
        refused = await smtp.execute_command(b"MAIL FROM:<alice@contoso.test> REQUIRETLS")
        assert refused.code == 530 and refused.message.startswith("5.7.10"), refused
        await smtp.starttls(validate_certs=False)
        await smtp.ehlo()
        assert smtp.supports_extension("requiretls")
        ok = await smtp.execute_command(b"MAIL FROM:<alice@contoso.test> REQUIRETLS")
        assert ok.code == 250, ok
    finally:
        await smtp.quit()


async def test_delivered_over_validated_tls_with_the_parameter_passed_on(transport_factory: Any,
                                                                        world: World) -> None:
    t = await transport(transport_factory, world)
    qid, to = await send(t, "ok.test")
    event = await sent_event(t, qid)
    [arrival] = world.got("mx.ok.test", to)
    assert arrival.tls and arrival.requiretls
    assert event["TlsPolicy"] == "webpki"


async def test_the_mx_host_that_offers_requiretls_gets_it(transport_factory: Any, world: World) -> None:
    t = await transport(transport_factory, world)
    qid, to = await send(t, "mixed.test")
    assert (await sent_event(t, qid))["RemoteHost"] == "mx2.mixed.test"
    assert world.got("mx2.mixed.test", to) and not world.got("mx1.mixed.test", to)


async def test_no_requiretls_at_the_next_hop_bounces_5_7_30_without_the_content(transport_factory: Any,
                                                                              world: World) -> None:
    t = await transport(transport_factory, world)
    qid, to = await send(t, "noreq.test", subject="Quarterly numbers", body="The secret is 4242.\r\n")
    [ndr] = await async_wait_for(lambda: [m for m in world.ndr_sink.messages if to.encode() in m.data],
                                 what="the NDR")
    assert ndr.mail_from in ("", "<>") and ndr.rcpt_tos == ["alice@contoso.test"]
    assert b"5.7.30" in ndr.data and b"REQUIRETLS" in ndr.data
    assert b"4242" not in ndr.data and b"Quarterly numbers" not in ndr.data
    assert b"message/rfc822" not in ndr.data and b"text/rfc822-headers" not in ndr.data
    assert not world.got("mx.noreq.test", to)
    # The same destination takes mail sent without REQUIRETLS.
    qid, to = await send(t, "noreq.test", requiretls=False)
    await sent_event(t, qid)
    [arrival] = world.got("mx.noreq.test", to)
    assert not arrival.requiretls


async def test_a_certificate_that_does_not_validate_never_gets_the_message(transport_factory: Any,
                                                                          world: World) -> None:
    t = await transport(transport_factory, world)
    qid, to = await send(t, "rogue.test")

    error = await failed_attempt(t.store, qid)
    assert error.startswith("451 4.7.5 REQUIRETLS"), error
    assert not world.got("mx.rogue.test", to)
