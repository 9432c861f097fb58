"""Name resolution for delivery, behind a small ``Resolver`` protocol.

``DnsResolver`` asks DNS servers with dnspython's async resolver: the ones in
``[dns] nameservers`` (``host:port``), else the system's (/etc/resolv.conf).
Timeouts follow Exchange: 5 seconds a server, 1 minute for the whole query.
Without configured nameservers, host addresses (smart hosts) are looked up
with the operating system's resolver too, so /etc/hosts entries work.

Besides MX and addresses for delivery, it answers TXT (DKIM selectors, SPF, DMARC,
MTA-STS) and PTR (reverse DNS of the sending addresses) for the signing and readiness
checks.

With ``[dns] dnssec = "trust-ad"`` (the default) every query sets the AD bit and EDNS0
(1232-byte UDP payload; a truncated answer is asked again over TCP, so large DNSSEC
answers work), and an answer counts as DNSSEC-secure when the reply carries AD: the
configured nameservers must be a validating resolver on a trusted path (a local
unbound, docs/transport-security.md).  ``"off"``: no answer is ever secure, so DANE
is never used.  The ``*_secure`` lookups and ``tlsa`` say whether their answer was.

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
import dns.edns
import dns.exception
import dns.flags
import dns.message
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


@dataclass(frozen=True, slots=True)
class TlsaRecord:
    """One TLSA record (RFC 6698): certificate usage, selector, matching type, association data."""

    usage: int
    selector: int
    mtype: int
    data: bytes

    def __str__(self) -> str:
        return f"{self.usage} {self.selector} {self.mtype} {self.data.hex()}"


class Resolver(Protocol):
    async def addresses(self, host: str) -> list[str]:
        """IPv4 and IPv6 addresses of ``host``; DnsError when there are none."""
        ...

    async def mx(self, domain: str) -> list[MxRecord]:
        """MX records of ``domain`` ([] when it has none); DnsError on failure."""
        ...

    async def mx_secure(self, domain: str) -> tuple[list[MxRecord], bool]:
        """``mx`` and whether the answer was DNSSEC-secure (a validated denial counts too)."""
        ...

    async def addresses_secure(self, host: str) -> tuple[list[str], bool]:
        """``addresses`` and whether every answer they came from was DNSSEC-secure."""
        ...

    async def tlsa(self, name: str) -> tuple[list[TlsaRecord], bool]:
        """TLSA records at ``name`` (``_25._tcp.mx.example``), [] when none, and whether the
        answer was secure; DnsError on failure (a bogus answer is a failure: SERVFAIL)."""
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
    def __init__(self, nameservers: list[str] | None = None, timeout: float = 5.0, lifetime: float = 60.0,
                 dnssec: bool = True) -> None:
        self.configured = bool(nameservers)
        self.dnssec = dnssec
        if nameservers:
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [nameserver(n) for n in nameservers]
        else:
            self._resolver = dns.asyncresolver.Resolver()
        self._resolver.timeout = timeout
        self._resolver.lifetime = lifetime
        if dnssec:
            # RFC 6840 5.7: AD in the query asks the resolver to say whether it validated.
            self._resolver.flags = dns.flags.RD | dns.flags.AD
            self._resolver.use_edns(0, 0, 1232)

    @classmethod
    def from_settings(cls, dns: DnsSettings) -> DnsResolver:
        return cls(dns.nameservers, dns.timeout, dns.lifetime, dnssec=dns.dnssec == "trust-ad")

    def _secure(self, response: dns.message.Message | None) -> bool:
        """The resolver validated the answer (or the denial): AD set, and trusted."""
        return self.dnssec and response is not None and bool(response.flags & dns.flags.AD)

    async def _query(self, name: str, rdtype: str) -> dns.resolver.Answer | None:
        answer, _ = await self._query_secure(name, rdtype)
        return answer

    async def _query_secure(self, name: str, rdtype: str) -> tuple[dns.resolver.Answer | None, bool]:
        """The answer (None for NODATA) and whether it was secure."""
        try:
            answer = await self._resolver.resolve(name, rdtype, search=False)
            return answer, self._secure(answer.response)
        except dns.resolver.NoAnswer as exc:
            return None, self._secure(exc.response())  # type: ignore[no-untyped-call]
        except dns.resolver.NXDOMAIN:
            raise DnsError(f"{name}: nonexistent domain (NXDOMAIN)", permanent=True) from None
        except dns.resolver.NoNameservers as exc:
            raise DnsError(f"DNS query for {name} {rdtype} failed with error ServerFailure ({exc})"
                           f"{_extended_errors(exc)}") from None
        except dns.exception.Timeout:
            raise DnsError(f"DNS query for {name} {rdtype} failed with error ErrorTimeout") from None
        except dns.exception.DNSException as exc:
            raise DnsError(f"DNS query for {name} {rdtype} failed: {exc}") from None

    async def mx(self, domain: str) -> list[MxRecord]:
        return (await self.mx_secure(domain))[0]

    async def mx_secure(self, domain: str) -> tuple[list[MxRecord], bool]:
        answer, secure = await self._query_secure(domain, "MX")
        if answer is None:
            return [], secure
        return [MxRecord(int(r.preference), r.exchange.to_text(omit_final_dot=True)) for r in answer], secure

    async def tlsa(self, name: str) -> tuple[list[TlsaRecord], bool]:
        answer, secure = await self._query_secure(name, "TLSA")
        if answer is None:
            return [], secure
        return [TlsaRecord(int(r.usage), int(r.selector), int(r.mtype), bytes(r.cert)) for r in answer], secure

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
        return (await self.addresses_secure(host))[0]

    async def addresses_secure(self, host: str) -> tuple[list[str], bool]:
        try:
            ipaddress.ip_address(host)
            return [host], False
        except ValueError:
            pass
        if not self.configured:
            return await _system_addresses(host), False
        out: list[str] = []
        errors: list[DnsError] = []
        secure = True
        for rdtype in ("A", "AAAA"):
            try:
                answer, ok = await self._query_secure(host, rdtype)
            except DnsError as exc:  # not counted against security: a failed lookup gives no address
                errors.append(exc)
                continue
            secure = secure and ok
            if answer is not None:
                out.extend(r.to_text() for r in answer)
        if not out:
            if errors:
                raise DnsError(str(errors[0]), permanent=all(e.permanent for e in errors))
            raise DnsError(f"{host} has no A or AAAA record", permanent=True)
        return out, secure


def _extended_errors(exc: dns.resolver.NoNameservers) -> str:
    """What the servers said in RFC 8914 Extended DNS Errors (unbound: "DNSSEC Bogus" and why)."""
    texts: list[str] = []
    for *_, response in exc.kwargs.get("errors", ()):
        for option in getattr(response, "options", ()) or ():
            if isinstance(option, dns.edns.EDEOption):
                code = option.code.name.replace("_", " ") if hasattr(option.code, "name") else option.code
                text = f"{code}: {option.text}" if option.text else str(code)
                if text not in texts:
                    texts.append(text)
    return f" [{'; '.join(texts)}]" if texts else ""


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
