"""DANE for direct delivery against real DNSSEC: Knot signs the zones, unbound validates them.

Every destination domain has its own MX host on its own loopback address, all on one port
(the connector's), each an aiosmtpd receiver offering STARTTLS with its own certificate.
The TLSA records are computed from those certificates.  mailhop asks unbound (``[dns]
dnssec = "trust-ad"``, the default), and a "To Internet" connector made as the README makes
it has SmtpDaneMode and MtaStsMode Opportunistic.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mailhop.cli.main import cli
from tests.support.client import make_message, submit
from tests.support.dns import shared_tcp_port
from tests.support.dnssec import SignedDns
from tests.support.mailhop import to_toml
from tests.support.tlsfix import Leaf, Pki, Receiver
from tests.support.wait import async_wait_for, failed_attempt

# domain -> the address of its one MX host, mx.<domain>
HOSTS = {
    "ee.test": "127.0.0.21", "mismatch.test": "127.0.0.22", "ta.test": "127.0.0.23", "taname.test": "127.0.0.24",
    "unsigned.test": "127.0.0.25", "bogus.test": "127.0.0.26", "lookupfail.test": "127.0.0.27",
    "unusable.test": "127.0.0.28", "big.test": "127.0.0.29", "ee2.test": "127.0.0.30",
}


def spki_sha256(cert: x509.Certificate) -> str:
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def with_ca(pki: Pki, leaf: Leaf) -> Leaf:
    """The leaf's chain file with the CA appended: a DANE-TA server sends its trust anchor."""
    leaf.cert_file.write_bytes(leaf.cert_file.read_bytes() + pki.ca.cert_pem.bytes())
    return leaf


class World:
    def __init__(self, root: Path) -> None:
        self.pki = Pki(root / "pki")
        self.port = shared_tcp_port(list(HOSTS.values()))
        self.leaves: dict[str, Leaf] = {}
        for domain in HOSTS:
            names = ("mx.somewhere-else.test",) if domain == "taname.test" else (f"mx.{domain}",)
            leaf = self.pki.leaf(domain.replace(".", "-"), *names)
            self.leaves[domain] = with_ca(self.pki, leaf) if domain in ("ta.test", "taname.test") else leaf
        self.receivers = {d: Receiver(starttls=self.pki.server_context(self.leaves[d]), host=ip, port=self.port).start()
                          for d, ip in HOSTS.items()}
        ee = spki_sha256(self.leaves["ee.test"].certificate)
        ca = spki_sha256(x509.load_pem_x509_certificate(self.pki.ca.cert_pem.bytes()))
        other = spki_sha256(self.pki.leaf("other", "mx.other.test").certificate)
        tlsa = f"_{self.port}._tcp.mx"

        def zone(domain: str, *tlsa_records: str) -> list[str]:
            return ["@ MX 10 mx", f"mx A {HOSTS[domain]}", *(f"{tlsa} TLSA {r}" for r in tlsa_records)]

        # Many DANE-EE 3 0 1 decoys and the one record that matches: the answer is larger than
        # the 1232 bytes of a UDP answer, so it comes over TCP.
        decoys = [f"3 0 1 {hashlib.sha256(bytes([i])).hexdigest()}" for i in range(40)]
        self.dns = SignedDns(
            signed={
                "ee.test": zone("ee.test", f"3 1 1 {ee}"),
                "ee2.test": zone("ee2.test", f"3 1 1 {spki_sha256(self.leaves['ee2.test'].certificate)}"),
                "mismatch.test": zone("mismatch.test", f"3 1 1 {other}"),
                "ta.test": zone("ta.test", f"2 1 1 {ca}"),
                "taname.test": zone("taname.test", f"2 1 1 {ca}"),
                "lookupfail.test": zone("lookupfail.test", f"3 1 1 {other}"),
                "unusable.test": zone("unusable.test", f"1 1 1 {other}", f"0 0 1 {other}"),
                "big.test": zone("big.test", *decoys, f"3 1 1 {spki_sha256(self.leaves['big.test'].certificate)}"),
            },
            unsigned={"unsigned.test": zone("unsigned.test", f"3 1 1 {other}")},
            presigned={"bogus.test": zone("bogus.test", f"3 1 1 {other}")},
            break_rrsig={"bogus.test": (tlsa, "TLSA")},
            refuse=[f"{tlsa}.lookupfail.test"],
        ).start()

    def stop(self) -> None:
        for r in self.receivers.values():
            r.stop()
        self.dns.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(tmp_path_factory.mktemp("dane"))
    yield w
    w.stop()


async def internet(transport_factory: Any, world: World, **props: Any) -> Any:
    t = await transport_factory(dns={"nameservers": [world.dns.resolver]})
    await t.connector(Name="To Internet", Usage="Internet", AddressSpaces="*", Port=str(world.port), **props)
    return t


async def send(t: Any, domain: str, **headers: str) -> tuple[int, str]:
    """Submit one message to a recipient of ``domain`` no other test uses (the receivers are shared)."""
    to = f"{uuid.uuid4().hex[:10]}@{domain}"
    data = make_message(sender="alice@contoso.test", to=to, headers={k.replace("_", "-"): v for k, v in headers.items()})
    return (await submit(t.port, "alice@contoso.test", [to], data)).queue_id, to


async def delivered(t: Any, world: World, sent: tuple[int, str]) -> dict[str, Any]:
    qid, to = sent
    [event] = await async_wait_for(
        lambda: [e for e in t.tracking() if e["EventId"] == "SEND" and e.get("InternalMessageId") == qid],
        what=f"delivery to {to}")
    [arrival] = [a for a in world.receivers[to.split("@")[1]].arrivals if to in a.rcpt_tos]
    assert arrival.tls
    return event


async def deferred(t: Any, world: World, sent: tuple[int, str]) -> str:
    """Wait for a failed attempt; the message is still queued and the receiver got nothing."""
    qid, to = sent
    error = await failed_attempt(t.store, qid, f"a failed attempt for {to}")
    assert error.startswith("451 4.7.5"), error
    assert not [a for a in world.receivers[to.split("@")[1]].arrivals if to in a.rcpt_tos]
    assert not [e for e in t.tracking() if e.get("InternalMessageId") == qid and e["EventId"] in ("SEND", "FAIL")]
    return error


async def test_dane_ee_match_is_delivered_and_tracked_as_dane(transport_factory: Any, world: World) -> None:
    t = await internet(transport_factory, world)
    event = await delivered(t, world, await send(t, "ee.test"))
    assert event["TlsPolicy"] == "dane" and event["TlsVersion"].startswith("TLSv1.")


async def test_tlsa_matching_nothing_is_never_delivered(transport_factory: Any, world: World) -> None:
    t = await internet(transport_factory, world)
    error = await deferred(t, world, await send(t, "mismatch.test"))
    assert "DANE authentication failed" in error and "no TLSA record" in error


async def test_dane_ta_with_the_right_name_is_delivered(transport_factory: Any, world: World) -> None:
    t = await internet(transport_factory, world)
    event = await delivered(t, world, await send(t, "ta.test"))
    assert event["TlsPolicy"] == "dane"


async def test_dane_ta_with_a_wrong_name_is_not_delivered(transport_factory: Any, world: World) -> None:
    t = await internet(transport_factory, world)
    error = await deferred(t, world, await send(t, "taname.test"))
    assert "DANE-TA" in error and "mx.taname.test" in error


async def test_tls_required_no_sets_dane_aside_and_the_tracking_log_says_so(transport_factory: Any,
                                                                            world: World) -> None:
    # RFC 8689 section 5: the sender asks that TLS policies not hold the message back.
    t = await internet(transport_factory, world)
    event = await delivered(t, world, await send(t, "mismatch.test", TLS_Required="No"))
    assert event["TlsPolicy"] == "tls-required-no"


async def test_tlsa_in_an_unsigned_zone_is_ignored(transport_factory: Any, world: World) -> None:
    t = await internet(transport_factory, world)
    event = await delivered(t, world, await send(t, "unsigned.test"))
    assert event["TlsPolicy"] == "opportunistic"


async def test_bogus_tlsa_answer_defers_and_never_goes_in_clear(transport_factory: Any, world: World) -> None:
    t = await internet(transport_factory, world)
    error = await deferred(t, world, await send(t, "bogus.test"))
    assert "TLSA lookup" in error and "failed" in error and "DNSSEC BOGUS" in error


async def test_failing_tlsa_lookup_of_a_secure_host_defers(transport_factory: Any, world: World) -> None:
    t = await internet(transport_factory, world)
    error = await deferred(t, world, await send(t, "lookupfail.test"))
    assert "TLSA lookup" in error


async def test_only_unusable_tlsa_records_mean_tls_without_authentication(transport_factory: Any,
                                                                          world: World) -> None:
    t = await internet(transport_factory, world)
    event = await delivered(t, world, await send(t, "unusable.test"))
    assert event["TlsPolicy"] == "dane"


async def test_a_tlsa_answer_too_large_for_udp_comes_over_tcp(transport_factory: Any, world: World) -> None:
    answer = world.dns.ask(f"_{world.port}._tcp.mx.big.test", "TLSA")
    assert answer.flags & 0x0200, "the UDP answer must be truncated (TC) for this test to mean anything"
    t = await internet(transport_factory, world)
    event = await delivered(t, world, await send(t, "big.test"))
    assert event["TlsPolicy"] == "dane"


async def test_mandatory_dane_refuses_a_destination_without_it(transport_factory: Any, world: World) -> None:
    t = await internet(transport_factory, world, SmtpDaneMode="Mandatory")
    error = await deferred(t, world, await send(t, "unsigned.test"))
    assert "SmtpDaneMode Mandatory" in error and "not DNSSEC-secure" in error
    # ... and still delivers where DANE is there.
    await delivered(t, world, await send(t, "ee2.test"))


async def test_dnssec_off_never_uses_tlsa(transport_factory: Any, world: World) -> None:
    t = await transport_factory(dns={"nameservers": [world.dns.resolver], "dnssec": "off"})
    await t.connector(Name="To Internet", Usage="Internet", AddressSpaces="*", Port=str(world.port))
    event = await delivered(t, world, await send(t, "mismatch.test"))
    assert event["TlsPolicy"] == "opportunistic"


def test_tls_explain_shows_dane_per_mx_host(tmp_path: Path, world: World) -> None:
    config = tmp_path / "mailhop.toml"
    config.write_text(to_toml({"server": {"name": "EXCH01", "data_dir": str(tmp_path / "data")},
                               "dns": {"nameservers": [world.dns.resolver]},
                               "delivery": {"allow_private_mx": True}}))
    run = CliRunner().invoke
    made = run(cli, ["--config", str(config), "connector", "new", "To Internet", "--usage", "internet",
                     "--address-spaces", "*", "--port", str(world.port)])
    assert made.exit_code == 0, made.output
    out = run(cli, ["--config", str(config), "tls", "explain", "ee.test", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["SmtpDaneMode"] == "Opportunistic" and data["MtaStsMode"] == "Opportunistic"
    [host] = data["Hosts"]
    assert host["Host"] == "mx.ee.test" and host["DnssecSecure"] is True and host["Policy"] == "dane"
    assert host["UsableTlsa"] == [f"3 1 1 {spki_sha256(world.leaves['ee.test'].certificate)}"]
    text = run(cli, ["--config", str(config), "tls", "explain", "bogus.test"])
    assert text.exit_code == 0 and "Refused" in text.output and "TLSA lookup" in text.output, text.output
    plain = json.loads(run(cli, ["--config", str(config), "tls", "explain", "unsigned.test", "--json"]).output)
    assert plain["Hosts"][0]["DnssecSecure"] is False and plain["Hosts"][0]["Policy"] == "opportunistic"
