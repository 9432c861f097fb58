"""What DANE and MTA-STS cost on direct delivery: the 4 KiB, 20 session load with both modes on and off.

The load is bench/run.py's (``smtp-source`` -> ``mailhop serve`` -> sink), but delivered
the way an Internet connector delivers: by MX, to a sink that offers STARTTLS
(bench/tls_sink.py, a certificate for ``mx.bench.test`` from a test CA mailhop trusts).
Each round runs four systems, A B A B:

- ``dnsmasq, modes off`` / ``dnsmasq, modes on``: DNS from dnsmasq (no DNSSEC); with the
  modes on, ``bench.test`` publishes an MTA-STS policy in ``enforce`` mode (served over HTTPS
  on 127.0.0.1:443 and cached after the first fetch), so every session checks the certificate
  (the Web PKI) and the MX name;
- ``dnssec, modes off`` / ``dnssec, modes on``: DNS from unbound validating zones Knot signs;
  with the modes on, DANE applies (``TLSA 3 1 1`` of the sink's key) before MTA-STS.

The cost of the policies is 1 - (modes on / modes off) of the end-to-end rate, per round and
resolver path, and its median; the target is under 10%.

    python bench/tls.py [--rounds 3] [--messages 4000] [--out docs/performance.md|-]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import Cleanup, fmt, install_signal_handlers, markdown_table, median, rmtree, update_report  # noqa: E402
from run import Mailhop, RoundResult, Scenario, Sink, run_round  # noqa: E402

from tests.support.dns import DnsServer  # noqa: E402
from tests.support.dnssec import SignedDns  # noqa: E402
from tests.support.https import HttpsServer  # noqa: E402
from tests.support.tlsfix import Pki  # noqa: E402

SCENARIO = Scenario(4, 20)
HERE = Path(__file__).resolve().parent
POLICY = "version: STSv1\nmode: enforce\nmx: mx.bench.test\nmax_age: 86400\n"


class TlsSink(Sink):
    cert: Path
    key: Path

    def command(self) -> list[str]:
        return [sys.executable, str(HERE / "tls_sink.py"), "127.0.0.1", str(self.port), str(self.cert), str(self.key)]


def spki_sha256(pem: bytes) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = x509.load_pem_x509_certificate(pem).public_key()
    return hashlib.sha256(key.public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()


class World:
    """The DNS servers, the policy server and the certificates every round shares."""

    def __init__(self, root: Path, cleanup: Cleanup) -> None:
        self.pki = Pki(root / "pki")
        self.leaf = self.pki.leaf("mx", "mx.bench.test")
        web = self.pki.leaf("mta-sts", "mta-sts.bench.test")
        self.https = HttpsServer("127.0.0.1", web.cert_file, web.key_file).start()
        cleanup.push("policy server", self.https.stop)
        self.https.policy("bench.test", POLICY)
        self.dnsmasq = DnsServer(mx={"bench.test": [(10, "mx.bench.test")]},
                                 a={"mx.bench.test": "127.0.0.1", "mta-sts.bench.test": "127.0.0.1"},
                                 txt={"_mta-sts.bench.test": ["v=STSv1; id=1"]}).start()
        cleanup.push("dnsmasq", self.dnsmasq.stop)
        self.tlsa_digest = spki_sha256(self.leaf.cert_file.read_bytes().split(b"-----END CERTIFICATE-----")[0]
                                       + b"-----END CERTIFICATE-----\n")
        self.signed: SignedDns | None = None
        self.cleanup = cleanup

    def dnssec(self, port: int) -> SignedDns:
        """Knot and unbound with the TLSA record for the sink's port (new for each sink)."""
        if self.signed is not None:
            self.signed.stop()
        self.signed = SignedDns(signed={"bench.test": [
            "@ MX 10 mx", "mx A 127.0.0.1", "mta-sts A 127.0.0.1", '_mta-sts TXT "v=STSv1; id=1"',
            f"_{port}._tcp.mx TLSA 3 1 1 {self.tlsa_digest}"]}).start()
        self.cleanup.push("knot and unbound", self.signed.stop)
        return self.signed


def system(world: World, root: Path, concurrency: int, workers: int, cleanup: Cleanup, resolver: str,
           modes_on: bool) -> Mailhop:
    m = Mailhop(root, concurrency, workers, cleanup)
    m.name = f"{resolver}, modes {'on' if modes_on else 'off'}"
    modes = "Opportunistic" if modes_on else "None"
    m.connector_args = ["To Internet", "--usage", "internet", "--address-spaces", "*", "--port", "{port}",
                        "--smtp-dane-mode", modes, "--mta-sts-mode", modes]
    m.extra_config = {"tls": {"ca_file": str(world.pki.ca_file)}, "delivery": {"allow_private_mx": True}}
    return m


def cost_text(results: Sequence[RoundResult]) -> list[str]:
    lines = []
    for resolver in ("dnsmasq", "dnssec"):
        costs = []
        for rnd in sorted({r.round for r in results}):
            on = [r for r in results if r.round == rnd and r.system == f"{resolver}, modes on"]
            off = [r for r in results if r.round == rnd and r.system == f"{resolver}, modes off"]
            if on and off and on[0].e2e_rate and off[0].e2e_rate:
                costs.append((1 - on[0].e2e_rate / off[0].e2e_rate) * 100)
        lines.append(f"cost of DANE and MTA-STS ({resolver}): per round {', '.join(fmt(c, 1) + '%' for c in costs)}; "
                     f"median {fmt(median(costs), 1)}%")
    return lines


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--messages", type=int, default=4000)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 4))
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--out", default=str(HERE.parent / "docs" / "performance.md"))
    args = p.parse_args(argv)
    install_signal_handlers()
    cleanup = Cleanup()
    workdir = Path(tempfile.mkdtemp(prefix="mailhop-bench-tls-"))
    os.chmod(workdir, 0o755)
    cleanup.push(f"work directory {workdir}", lambda: rmtree(workdir))
    results: list[RoundResult] = []
    policies: dict[tuple[int, str], str] = {}
    try:
        world = World(workdir, cleanup)

        def sink(directory: Path, c: Cleanup) -> Sink:
            TlsSink.cert, TlsSink.key = world.leaf.cert_file, world.leaf.key_file
            return TlsSink(directory, c)

        for rnd in range(1, args.rounds + 1):
            for resolver in ("dnsmasq", "dnssec"):
                for modes_on in (False, True):
                    root = workdir / f"round{rnd}-{resolver}-{'on' if modes_on else 'off'}"
                    m = system(world, root, args.concurrency, args.workers, cleanup, resolver, modes_on)
                    holder: dict[str, str] = {}

                    def factory(directory: Path, c: Cleanup, resolver: str = resolver,
                                m: Mailhop = m, holder: dict[str, str] = holder) -> Sink:
                        s = sink(directory, c)
                        ns = world.dnsmasq.nameserver if resolver == "dnsmasq" else world.dnssec(s.port).resolver
                        m.extra_config["dns"] = {"nameservers": [ns]}
                        holder["ns"] = ns
                        return s

                    print(f"[{SCENARIO.title}] round {rnd}/{args.rounds}: {m.name} ...", flush=True)
                    r = run_round(m, SCENARIO, rnd, args.messages, workdir, args.timeout, cleanup, factory)
                    results.append(r)
                    # What the deliveries were made under, from the tracking log: the proof that "modes
                    # on" measured DANE or MTA-STS, not a fall-back.
                    used = Counter(str(e.get("TlsPolicy")) for e in m._events() if e.get("EventId") == "SEND")
                    policies[(rnd, m.name)] = ", ".join(f"{k} {v}" for k, v in used.most_common())
                    print(f"    end-to-end {fmt(r.e2e_rate)} msg/s, p99 {fmt(r.p99_ms)} ms, CPU {fmt(r.cpu_per_1k, 2)} s/1k, "
                          f"delivered {r.delivered} ({policies[(rnd, m.name)]})"
                          + (f"  PROBLEM: {r.problem}" if r.problem else ""), flush=True)
                    rmtree(root)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        cleanup.run()
    lines = cost_text(results)
    print("\n".join(lines))
    table = markdown_table(["round", "system", "end-to-end msg/s", "p99 ms", "CPU s/1k msg", "delivered",
                            "TlsPolicy of the deliveries", "problem"],
                           [[str(r.round), r.system, fmt(r.e2e_rate), fmt(r.p99_ms), fmt(r.cpu_per_1k, 2),
                             str(r.delivered), policies.get((r.round, r.system), ""), r.problem or ""]
                            for r in results], right=(2, 3, 4, 5))
    body = "\n".join([
        "### Transport security: DANE and MTA-STS on and off (bench/tls.py)", "",
        f"{SCENARIO.title}, {args.messages} messages a round, delivered by MX to a sink that offers STARTTLS "
        "(bench/tls_sink.py); `modes on`: SmtpDaneMode and MtaStsMode Opportunistic with an enforced MTA-STS "
        "policy (dnsmasq) or DANE-EE (Knot + unbound), policies cached; `modes off`: both None.", "",
        table, "", *(f"- {line}" for line in lines), ""])
    if args.out != "-":
        update_report(Path(args.out), "tls", body)
        print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
