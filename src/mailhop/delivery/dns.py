"""Name resolution for delivery, behind a small ``Resolver`` protocol.

``DnsResolver`` asks DNS servers with dnspython's async resolver: the ones in
``[dns] nameservers`` (``host:port``), else the system's (/etc/resolv.conf).
Timeouts follow Exchange: 5 seconds a server, 1 minute for the whole query.
Without configured nameservers, host addresses (smart hosts) are looked up
with the operating system's resolver too, so /etc/hosts entries work.

Besides MX and addresses for delivery, it answers TXT (DKIM selectors, SPF, DMARC,
MTA-STS) and PTR (reverse DNS of the sending addresses) for the signing and readiness
checks.

Errors become ``DnsError``: ``permanent`` for NXDOMAIN (the domain does not
exist), temporary for SERVFAIL, timeouts and everything else that may heal.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Protocol

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver
import dns.reversename

from mailhop.config import DnsSettings
from mailhop.errors import MailhopError


class DnsError(MailhopError):
    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class MxRecord:
    preference: int
    host: str  # "." for a null MX (RFC 7505: "0 ."; dnspython keeps the root's dot)


class Resolver(Protocol):
    async def addresses(self, host: str) -> list[str]:
        """IPv4 and IPv6 addresses of ``host``; DnsError when there are none."""
        ...

    async def mx(self, domain: str) -> list[MxRecord]:
        """MX records of ``domain`` ([] when it has none); DnsError on failure."""
        ...

    async def txt(self, name: str) -> list[str]:
        """TXT records of ``name``, each one's strings joined without a separator (RFC 7208
        section 3.3, RFC 6376 section 3.6.2.2); [] when it has none; DnsError on failure."""
        ...

    async def ptr(self, ip: str) -> list[str]:
        """The names of ``ip``'s PTR records, without the trailing dot ([] when none);
        DnsError on failure (NXDOMAIN when the reverse name does not exist)."""
        ...


def nameserver(text: str) -> dns.nameserver.Do53Nameserver:
    host, port = text.strip(), 53
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        port = int(rest.lstrip(":") or 53)
    elif host.count(":") == 1:
        host, port_text = host.split(":")
        port = int(port_text)
    ipaddress.ip_address(host)
    return dns.nameserver.Do53Nameserver(host, port)


class DnsResolver:
    def __init__(self, nameservers: list[str] | None = None, timeout: float = 5.0, lifetime: float = 60.0) -> None:
        self.configured = bool(nameservers)
        if nameservers:
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [nameserver(n) for n in nameservers]
        else:
            self._resolver = dns.asyncresolver.Resolver()
        self._resolver.timeout = timeout
        self._resolver.lifetime = lifetime

    @classmethod
    def from_settings(cls, dns: DnsSettings) -> DnsResolver:
        return cls(dns.nameservers, dns.timeout, dns.lifetime)

    async def _query(self, name: str, rdtype: str) -> dns.resolver.Answer | None:
        try:
            return await self._resolver.resolve(name, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            raise DnsError(f"{name}: nonexistent domain (NXDOMAIN)", permanent=True) from None
        except dns.resolver.NoAnswer:
            return None
        except dns.resolver.NoNameservers as exc:
            raise DnsError(f"DNS query for {name} {rdtype} failed with error ServerFailure ({exc})") from None
        except dns.exception.Timeout:
            raise DnsError(f"DNS query for {name} {rdtype} failed with error ErrorTimeout") from None
        except dns.exception.DNSException as exc:
            raise DnsError(f"DNS query for {name} {rdtype} failed: {exc}") from None

    async def mx(self, domain: str) -> list[MxRecord]:
        answer = await self._query(domain, "MX")
        if answer is None:
            return []
        return [MxRecord(int(r.preference), r.exchange.to_text(omit_final_dot=True)) for r in answer]

    async def txt(self, name: str) -> list[str]:
        answer = await self._query(name, "TXT")
        if answer is None:
            return []
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]

    async def ptr(self, ip: str) -> list[str]:
        answer = await self._query(dns.reversename.from_address(ip).to_text(omit_final_dot=True), "PTR")
        if answer is None:
            return []
        return [r.target.to_text(omit_final_dot=True) for r in answer]

    async def addresses(self, host: str) -> list[str]:
        try:
            ipaddress.ip_address(host)
            return [host]
        except ValueError:
            pass
        if not self.configured:
            return await _system_addresses(host)
        out: list[str] = []
        errors: list[DnsError] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self._query(host, rdtype)
            except DnsError as exc:
                errors.append(exc)
                continue
            if answer is not None:
                out.extend(r.to_text() for r in answer)
        if not out:
            if errors:
                raise DnsError(str(errors[0]), permanent=all(e.permanent for e in errors))
            raise DnsError(f"{host} has no A or AAAA record", permanent=True)
        return out


async def _system_addresses(host: str) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        permanent = exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5))
        raise DnsError(f"DNS query for {host} failed: {exc.strerror}", permanent=permanent) from None
    out: list[str] = []
    for info in infos:
        ip = str(info[4][0])
        if ip not in out:
            out.append(ip)
    return out
