"""DNSSEC on loopback: Knot DNS signs and serves the test zones, unbound validates them.

``SignedDns`` writes each zone's records to a zone file, starts ``knotd`` on a free port
with automatic DNSSEC signing (ECDSA P-256, NSEC) of the ``signed`` zones and plain
service of the others, reads back each signed zone's key-signing key, and starts
``unbound`` on another port as the validating resolver for all of them: one stub zone
per test zone pointing at Knot, the KSKs as trust anchors (each zone an island of
trust: there is no signed parent).  Point mailhop's ``[dns] nameservers`` at
``resolver``: answers from signed zones come with AD, unsigned ones without, broken
ones as SERVFAIL.

``presigned`` zones are signed here with dnspython instead (their key is the trust
anchor too) and served by Knot as they are, so a test can break one signature:
``break_rrsig={"zone": ("name", "TLSA")}`` replaces the signature of that RRset with
garbage, which makes that answer bogus while the rest of the zone validates.
``refuse`` names are refused by unbound (``local-zone ... refuse``), so a lookup of a
name in a secure zone fails while its zone stays secure.

    with SignedDns(signed={"dane.test": ["@ MX 10 mx", "mx A 127.0.0.2",
                                         "_25._tcp.mx TLSA 3 1 1 ab..."]}) as dns:
        ... [dns] nameservers = [dns.resolver] ...
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.RRSIG
import dns.zone
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.dns import free_udp_tcp_port

KNOTD = shutil.which("knotd") or "/usr/sbin/knotd"
UNBOUND = shutil.which("unbound") or "/usr/sbin/unbound"
TTL = 1  # short TTLs: unbound re-asks soon after a test changes nothing it relies on


def _zone_text(zone: str, records: Iterable[str]) -> str:
    head = [f"$ORIGIN {zone}.", f"$TTL {TTL}",
            f"@ SOA ns.{zone}. hostmaster.{zone}. {int(time.time())} 3600 600 86400 {TTL}",
            f"@ NS ns.{zone}.", "ns A 127.0.0.1"]
    return "\n".join([*head, *records]) + "\n"


def _presign(zone: str, text: str, broken: tuple[str, str] | None) -> tuple[str, str]:
    """The zone signed by dnspython (its KSK as a trust anchor line), one RRSIG broken if asked."""
    z = dns.zone.from_text(text, origin=zone, relativize=False)
    key = ec.generate_private_key(ec.SECP256R1())
    dnskey = dns.dnssec.make_dnskey(key.public_key(), dns.dnssec.Algorithm.ECDSAP256SHA256, flags=257)
    now = int(time.time())
    dns.dnssec.sign_zone(z, keys=[(key, dnskey)], add_dnskey=True, inception=now - 3600,
                         expiration=now + 86400 * 30)
    if broken is not None:
        name, rdtype = broken
        node = z.get_node(dns.name.from_text(name, dns.name.from_text(zone)) if not name.endswith(".") else name)
        assert node is not None, broken
        sigs = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, dns.rdatatype.from_text(rdtype))
        assert sigs is not None, broken
        bad = [rr.replace(signature=bytes(len(rr.signature))) for rr in sigs]
        sigs.clear()
        for rr in bad:
            sigs.add(rr)
    return z.to_text(relativize=False), f"{zone}. DNSKEY {dnskey.to_text()}"


class SignedDns:
    def __init__(self, *, signed: Mapping[str, Iterable[str]] | None = None,
                 unsigned: Mapping[str, Iterable[str]] | None = None,
                 presigned: Mapping[str, Iterable[str]] | None = None,
                 break_rrsig: Mapping[str, tuple[str, str]] | None = None,
                 refuse: Iterable[str] = ()) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailhop-dnssec-"))
        self.signed = {z: list(r) for z, r in (signed or {}).items()}
        self.unsigned = {z: list(r) for z, r in (unsigned or {}).items()}
        self.presigned = {z: list(r) for z, r in (presigned or {}).items()}
        self.break_rrsig = dict(break_rrsig or {})
        self.refuse = list(refuse)
        self.knot_port = free_udp_tcp_port()
        self.port = free_udp_tcp_port()
        self.anchors: list[str] = []
        self._procs: list[subprocess.Popen[bytes]] = []

    @property
    def resolver(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def zones(self) -> list[str]:
        return [*self.signed, *self.unsigned, *self.presigned]

    # --- Knot -----------------------------------------------------------------------------------

    def _knot_conf(self) -> str:
        zones = []
        for zone in self.zones:
            signing = "on" if zone in self.signed else "off"
            zones.append(f"  - domain: {zone}\n    file: {self.dir}/{zone}.zone\n    dnssec-signing: {signing}\n"
                         + ("    dnssec-policy: test\n" if zone in self.signed else ""))
        return (f"server:\n  rundir: {self.dir}\n  listen: 127.0.0.1@{self.knot_port}\n"
                f"database:\n  storage: {self.dir}/db\n"
                f"log:\n  - target: {self.dir}/knot.log\n    any: info\n"
                "policy:\n  - id: test\n    algorithm: ecdsap256sha256\n    nsec3: off\n"
                "    ksk-lifetime: 0\n    zsk-lifetime: 0\n"
                "template:\n  - id: default\n    zonefile-sync: -1\n    zonefile-load: whole\n"
                "    journal-content: none\n    semantic-checks: off\n"
                "zone:\n" + "".join(zones))

    def _ask_knot(self, name: str, rdtype: str) -> dns.message.Message:
        query = dns.message.make_query(name, rdtype, want_dnssec=True)
        return dns.query.tcp(query, "127.0.0.1", port=self.knot_port, timeout=2)

    def _start_knot(self) -> None:
        (self.dir / "db").mkdir()
        for zone in self.zones:
            text = _zone_text(zone, self.signed.get(zone) or self.unsigned.get(zone) or self.presigned[zone])
            if zone in self.presigned:
                text, anchor = _presign(zone, text, self.break_rrsig.get(zone))
                self.anchors.append(anchor)
            (self.dir / f"{zone}.zone").write_text(text)
        conf = self.dir / "knot.conf"
        conf.write_text(self._knot_conf())
        self._spawn([KNOTD, "-c", str(conf)], "knot")
        for zone in self.signed:
            self.anchors.append(self._wait_ksk(zone))
        for zone in [*self.unsigned, *self.presigned]:
            self._wait(lambda zone=zone: self._ask_knot(zone, "SOA").answer, f"Knot serving {zone}")

    def _wait_ksk(self, zone: str) -> str:
        def ksk() -> str | None:
            for rrset in self._ask_knot(zone, "DNSKEY").answer:
                for rr in rrset:
                    if getattr(rr, "flags", 0) & 1:  # SEP: the key-signing key
                        return f"{zone}. DNSKEY {rr.to_text()}"
            return None
        return self._wait(ksk, f"Knot's signed {zone}")

    # --- unbound --------------------------------------------------------------------------------

    def _start_unbound(self) -> None:
        anchors = self.dir / "anchors"
        anchors.write_text("\n".join(self.anchors) + "\n")
        stubs = "".join(f"stub-zone:\n  name: \"{z}\"\n  stub-addr: 127.0.0.1@{self.knot_port}\n"
                        for z in self.zones)
        refused = "".join(f"  local-zone: \"{n}\" refuse\n" for n in self.refuse)
        conf = self.dir / "unbound.conf"
        conf.write_text(
            "server:\n"
            f"  interface: 127.0.0.1@{self.port}\n  port: {self.port}\n"
            f"  directory: \"{self.dir}\"\n  chroot: \"\"\n  username: \"\"\n  pidfile: \"{self.dir}/unbound.pid\"\n"
            f"  logfile: \"{self.dir}/unbound.log\"\n  use-syslog: no\n  verbosity: 1\n  val-log-level: 2\n"
            "  do-not-query-localhost: no\n  num-threads: 1\n  so-reuseport: no\n  do-ip6: no\n"
            "  module-config: \"validator iterator\"\n"
            f"  trust-anchor-file: \"{anchors}\"\n"
            "  local-zone: \"test.\" nodefault\n  qname-minimisation: no\n  ede: yes\n"
            "  cache-max-ttl: 1\n  cache-max-negative-ttl: 1\n  val-bogus-ttl: 1\n"
            + refused + stubs)
        self._spawn([UNBOUND, "-d", "-c", str(conf)], "unbound")
        first = self.zones[0]
        self._wait(lambda: self.ask(first, "SOA").answer, "unbound answering")

    def ask(self, name: str, rdtype: str) -> dns.message.Message:
        """A query to unbound with AD asked for (what mailhop sends)."""
        query = dns.message.make_query(name, rdtype, use_edns=0, payload=1232)
        query.flags |= dns.flags.AD
        return dns.query.udp(query, "127.0.0.1", port=self.port, timeout=2, ignore_trailing=True)

    # --- processes ------------------------------------------------------------------------------

    def _spawn(self, argv: list[str], name: str) -> None:
        with open(self.dir / f"{name}.out", "wb") as log:  # the child keeps its own descriptor
            self._procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def _wait(self, probe: Any, what: str, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            for proc in self._procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{proc.args[0]} exited: {self.logs()}")
            try:
                result = probe()
                if result:
                    return result
            except (OSError, dns.exception.DNSException) as exc:
                last = exc
            time.sleep(0.1)
        raise RuntimeError(f"timed out waiting for {what} ({last}): {self.logs()}")

    def logs(self) -> str:
        out = []
        for f in sorted(self.dir.glob("*.out")) + sorted(self.dir.glob("*.log")):
            out.append(f"--- {f.name}\n{f.read_text(errors='replace')[-3000:]}")
        return "\n".join(out)

    def start(self) -> SignedDns:
        try:
            self._start_knot()
            self._start_unbound()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
        self._procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> SignedDns:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
