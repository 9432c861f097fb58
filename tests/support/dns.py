"""A throwaway DNS server (dnsmasq) on 127.0.0.1 that serves only the records a test gives.

Names under ``local`` zones (default ``test``) that the test did not define are
NXDOMAIN; a zone in ``servfail`` is forwarded to a dead upstream
(127.0.0.1#9), so its queries time out (a temporary failure for the resolver).
``null_mx`` domains get RFC 7505's ``MX 0 .``.  ``txt`` gives each name its TXT
records (split into strings of 255 bytes), ``ptr`` an address its PTR names; note that
an ``a`` record (dnsmasq's ``--host-record``) gives its address a PTR too.  The
reverse zones are local as well, so an address without a PTR is NXDOMAIN.  dnsmasq runs in the foreground
as a child process and logs every query to a file, which ``queries`` reads back.

    with DnsServer(mx={"good.test": [(10, "mx1.good.test")]},
                   a={"mx1.good.test": "127.0.0.2"}) as dns:
        ... [dns] nameservers = [dns.nameserver] ...
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.reversename

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
DEAD_UPSTREAM = "127.0.0.1#9"  # nothing answers there: forwarded queries time out
_QUERY = re.compile(r"query\[(\w+)\] (\S+) from ")


def free_udp_tcp_port(host: str = "127.0.0.1") -> int:
    """A port that is free for both UDP and TCP on ``host`` (at the moment of asking)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError(f"no port free for both UDP and TCP on {host}")


def shared_tcp_port(hosts: Sequence[str]) -> int:
    """One TCP port that is free on every address in ``hosts`` (e.g. 127.0.0.2, 127.0.0.3)."""
    for _ in range(100):
        socks: list[socket.socket] = []
        try:
            first = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(first)
            first.bind((hosts[0], 0))
            port = int(first.getsockname()[1])
            for host in hosts[1:]:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no TCP port free on all of {', '.join(hosts)}")


class DnsServer:
    def __init__(
        self,
        *,
        mx: Mapping[str, Iterable[tuple[int, str]]] | None = None,
        a: Mapping[str, str] | None = None,
        txt: Mapping[str, Iterable[str]] | None = None,
        ptr: Mapping[str, str | Iterable[str]] | None = None,
        null_mx: Iterable[str] = (),
        servfail: Iterable[str] = (),
        local: Iterable[str] = ("test", "in-addr.arpa", "ip6.arpa"),
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.port = 0
        args: list[str] = [f"--local=/{zone}/" for zone in local]
        for domain, records in (mx or {}).items():
            args += [f"--mx-host={domain},{exchange},{pref}" for pref, exchange in records]
        args += [f"--host-record={name},{ip}" for name, ip in (a or {}).items()]
        args += [txt_record(name, text) for name, texts in (txt or {}).items() for text in texts]
        for ip, names in (ptr or {}).items():
            reverse = dns.reversename.from_address(ip).to_text(omit_final_dot=True)
            args += [f"--ptr-record={reverse},{n}" for n in ([names] if isinstance(names, str) else names)]
        # RFC 7505 null MX: preference 0 (0000), exchange the root name (00).
        args += [f"--dns-rr={domain},15,000000" for domain in null_mx]
        args += [f"--server=/{zone}/{DEAD_UPSTREAM}" for zone in servfail]
        self.record_args = args
        self.process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self.log_path: Path | None = None

    @property
    def nameserver(self) -> str:
        """The ``[dns] nameservers`` entry for this server."""
        return f"{self.host}:{self.port}"

    def _command(self) -> list[str]:
        return [
            DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--pid-file",
            f"--port={self.port}", f"--listen-address={self.host}", "--bind-interfaces",
            "--no-resolv", "--no-hosts", "--cache-size=0", "--log-queries", "--log-facility=-",
            *self.record_args,
        ]

    def restart(self, **records: Any) -> None:
        """Serve other records (``DnsServer``'s arguments) on the same port: dnsmasq reads
        them only when it starts, so it is stopped and started again."""
        assert self.process is not None and self._dir is not None
        replacement = DnsServer(**records, host=self.host)
        self.record_args = replacement.record_args
        self._reap()
        assert self.log_path is not None
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT)
        if not self._wait_ready(10.0):
            raise RuntimeError(f"dnsmasq did not start again:\n{self.log()}")

    def start(self, timeout: float = 10.0) -> DnsServer:
        self._dir = tempfile.TemporaryDirectory(prefix="mailhop-dns-")
        self.log_path = Path(self._dir.name) / "dnsmasq.log"
        last = ""
        try:
            for _ in range(5):  # the port may be taken between choosing it and dnsmasq binding it
                self.port = free_udp_tcp_port(self.host)
                with open(self.log_path, "wb") as log:
                    self.process = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL,
                                                    stdout=log, stderr=subprocess.STDOUT)
                if self._wait_ready(timeout):
                    return self
                last = self.log_path.read_text(errors="replace")
                self._reap()
            raise RuntimeError(f"dnsmasq did not start:\n{last}")
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        probe = dns.message.make_query("ready.probe.invalid.", "A")
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                dns.query.udp(probe, self.host, port=self.port, timeout=0.2)
                return True  # any answer (REFUSED, NXDOMAIN) means it listens
            except (dns.exception.Timeout, OSError):
                time.sleep(0.05)
        return False

    def _reap(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop(self) -> None:
        self._reap()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def queries(self) -> list[tuple[str, str]]:
        """(type, name) of every query dnsmasq received so far, in order."""
        return [(m.group(1), m.group(2)) for m in _QUERY.finditer(self.log())]

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def txt_record(name: str, text: str) -> str:
    """dnsmasq's option for one TXT record: the text in strings of at most 255 bytes (a
    2048-bit DKIM key's record is longer; RFC 6376 section 3.6.2.2 joins them again)."""
    data = text.encode()
    chunks = [data[i:i + 255].decode() for i in range(0, len(data), 255)] or [""]
    for chunk in chunks:
        if "," in chunk or "\\" in chunk:  # dnsmasq's separator; quotes on its command line are literal
            raise ValueError(f"TXT text for {name} holds a comma or backslash: {text!r}")
    return f"--txt-record={name}," + ",".join(chunks)


def resolve(server: DnsServer, name: str, rdtype: str) -> tuple[str, list[str]]:
    """Ask ``server`` directly: (rcode text, answer records as text). For checks in tests."""
    query = dns.message.make_query(name, rdtype)
    response = dns.query.udp(query, server.host, port=server.port, timeout=2)
    return dns.rcode.to_text(response.rcode()), [rr.to_text() for rrset in response.answer for rr in rrset]


class DkimZone:
    """A ``DnsServer`` whose TXT records grow as a test publishes them: the ``Records`` of a
    DKIM config as ``mailhop dkim`` or the API gives them (``publish``, of the roles given),
    or any name (``add``).  Each change restarts dnsmasq on the same port with ``base`` and
    every TXT record so far."""

    ROLES = ("Active", "Pending", "Inactive")

    def __init__(self, **base: Any) -> None:
        self.base = base
        self.txt: dict[str, list[str]] = {}
        self.server = DnsServer(**base).start()

    def publish(self, config: dict[str, Any], roles: tuple[str, ...] = ROLES) -> None:
        self.txt.update({r["Name"]: [r["Value"]] for r in config["Records"] if r["Role"] in roles})
        self.server.restart(**self.base, txt=self.txt)

    def add(self, name: str, value: str) -> None:
        self.txt[name] = [value]
        self.server.restart(**self.base, txt=self.txt)
