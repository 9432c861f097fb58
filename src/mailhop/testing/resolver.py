"""An in-memory ``Resolver``: DNS answers from plain data, no network.

It passes the same contract suite as ``DnsResolver`` against a real DNS server
(tests/contract/test_resolver.py), so code that takes a ``Resolver`` can be tested
with it and see what it would see from DNS::

    FakeResolver(
        mx={"fabrikam.test": [(10, "mx1.fabrikam.test"), (20, "mx2.fabrikam.test")],
            "implicit.test": []},                      # exists, has no MX: mx() == []
        addresses={"mx1.fabrikam.test": ["127.0.0.2", "2001:db8::2"],
                   "mx2.fabrikam.test": "127.0.0.3",   # one address may be a bare string
                   "implicit.test": ["127.0.0.4"]},
        txt={"fabrikam.test": ["v=spf1 ip4:127.0.0.2 -all"]},   # each record's strings joined
        ptr={"127.0.0.2": ["mx1.fabrikam.test"]},      # reverse DNS: address -> names
        null_mx={"nomail.test"},                       # RFC 7505 "MX 0 ."
        nxdomain={"gone.test"},                        # optional: documents intent
        failing={"broken.test"},                       # the zone's server does not answer
        secure={"fabrikam.test"},                      # DNSSEC-secure zones (the AD bit)
        tlsa={"_25._tcp.mx1.fabrikam.test": [TlsaRecord(3, 1, 1, digest)]},
    )

The data:

``mx``
    domain -> MX records, each ``(preference, exchange)`` or an ``MxRecord``.  An
    empty list means the domain exists but has no MX records.  The exchange is
    returned as given, less a trailing dot; the root name (``"."`` or ``""``) is
    returned as ``"."``, which is what ``DnsResolver`` returns for a null MX.
``addresses``
    host -> its IPv4 and IPv6 addresses (a list, or one string).  ``addresses()``
    returns the IPv4 ones first, then the IPv6 ones, as ``DnsResolver`` does (an A
    query, then an AAAA query).  An empty list means the host exists without any.
``txt``
    name -> its TXT records, each one text (the strings of a record joined, as
    ``DnsResolver.txt`` returns them).
``ptr``
    IP address -> the names of its PTR records.  The reverse names
    (``2.0.0.127.in-addr.arpa``) exist for these addresses only; ``ptr()`` of any
    other address is NXDOMAIN, as from a server authoritative for the reverse zones.
``null_mx``
    domains whose only MX is RFC 7505's null MX: ``mx()`` returns
    ``[MxRecord(0, ".")]``.
``nxdomain``
    names that do not exist.  Every name not in the data is NXDOMAIN anyway, like a
    server authoritative for it; listing names here only says so, and a name listed
    that also has data is a ``ValueError``.
``secure``
    zones whose answers are DNSSEC-secure, as from a validating resolver that sets AD:
    the ``*_secure`` lookups and ``tlsa`` say ``True`` for names in them.
``tlsa``
    name -> its TLSA records (``TlsaRecord``).
``failing``
    zones whose queries time out, like ``tests.support.dns.DnsServer``'s ``servfail``
    zones (forwarded to a dead upstream): the name and every name under it.

Lookups ignore case and a trailing dot.  A name exists when it or a name under it
has data (an empty non-terminal: ``example.test`` exists, without records, when only
``mx1.example.test`` is given), so querying it is an empty answer, not NXDOMAIN.

How it fails, with ``DnsResolver``'s messages (``name`` as the caller spelled it):

* NXDOMAIN: ``DnsError("<name>: nonexistent domain (NXDOMAIN)", permanent=True)``,
  from ``mx()`` and ``addresses()`` alike.
* a failing zone: ``DnsError("DNS query for <name> <MX|A> failed with error
  ErrorTimeout")``, temporary (``addresses()`` reports its A query, as
  ``DnsResolver`` reports the first of its two failed queries).
* a host that exists without addresses: ``DnsError("<host> has no A or AAAA
  record", permanent=True)``.
* an IP literal given to ``addresses()`` is returned as is, without a query, even in
  a failing zone.

``queries`` lists every DNS query made, as ``(type, name)`` in order, like
``DnsServer.queries()``: ``("MX", domain)`` per ``mx()``, ``("TXT", name)`` per
``txt()``, ``("PTR", reverse name)`` per ``ptr()``, ``("A", host)`` and
``("AAAA", host)`` per ``addresses()`` of a name (none for an IP literal).  Each
call also yields to the event loop once, as a real query would.

Where it differs from ``DnsResolver`` on a real server: it is authoritative for every
name, so a name outside the data is NXDOMAIN, where a server that does not serve the
zone answers REFUSED or SERVFAIL (temporary); there are no retries, so ``queries``
holds each query once; and ``DnsResolver`` without configured nameservers looks host
addresses up with the operating system (/etc/hosts), whose errors read differently.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable, Mapping

import dns.reversename

from mailhop.delivery.dns import DnsError, MxRecord, Resolver, TlsaRecord

ROOT = "."  # DnsResolver's text for the root name: to_text(omit_final_dot=True) of "."


def _key(name: str) -> str:
    """How a name is compared: case-insensitively and without the trailing dot."""
    return name.lower().rstrip(".")


def _exchange(host: str) -> str:
    text = host.rstrip(".")
    return text if text else ROOT


def _record(record: tuple[int, str] | MxRecord) -> MxRecord:
    if isinstance(record, MxRecord):
        preference, host = record.preference, record.host
    else:
        preference, host = record
    return MxRecord(int(preference), _exchange(host))


def _reverse(ip: str) -> str:
    """``127.0.0.2`` -> ``2.0.0.127.in-addr.arpa`` (what ``DnsResolver.ptr`` asks for)."""
    return str(dns.reversename.from_address(ip).to_text(omit_final_dot=True))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class FakeResolver:
    def __init__(
        self,
        *,
        mx: Mapping[str, Iterable[tuple[int, str] | MxRecord]] | None = None,
        addresses: Mapping[str, str | Iterable[str]] | None = None,
        txt: Mapping[str, Iterable[str]] | None = None,
        ptr: Mapping[str, Iterable[str]] | None = None,
        null_mx: Iterable[str] = (),
        nxdomain: Iterable[str] = (),
        failing: Iterable[str] = (),
        secure: Iterable[str] = (),
        tlsa: Mapping[str, Iterable[TlsaRecord]] | None = None,
    ) -> None:
        self._mx: dict[str, list[MxRecord]] = {}
        for domain, records in (mx or {}).items():
            self._mx.setdefault(_key(domain), []).extend(_record(r) for r in records)
        for domain in null_mx:
            self._mx.setdefault(_key(domain), []).append(MxRecord(0, ROOT))
        self._addresses: dict[str, list[str]] = {}
        for host, ips in (addresses or {}).items():
            listed = [ips] if isinstance(ips, str) else list(ips)
            for ip in listed:
                ipaddress.ip_address(ip)  # ValueError for anything but an address
            self._addresses.setdefault(_key(host), []).extend(listed)
        self._txt: dict[str, list[str]] = {}
        for name, texts in (txt or {}).items():
            self._txt.setdefault(_key(name), []).extend(texts)
        self._ptr: dict[str, list[str]] = {}
        for ip, names in (ptr or {}).items():
            self._ptr.setdefault(_key(_reverse(ip)), []).extend(n.rstrip(".") for n in names)
        self._tlsa = {_key(name): list(records) for name, records in (tlsa or {}).items()}
        self._secure = {_key(zone) for zone in secure}
        self._failing = {_key(zone) for zone in failing}
        self._nxdomain = {_key(name) for name in nxdomain}
        for name in sorted(self._nxdomain):
            if self._exists(name):
                raise ValueError(f"{name} is listed as NXDOMAIN but has records")
        self.queries: list[tuple[str, str]] = []

    def _exists(self, key: str) -> bool:
        suffix = "." + key
        return any(n == key or n.endswith(suffix)
                   for n in (*self._mx, *self._addresses, *self._txt, *self._ptr, *self._tlsa))

    def _in_failing_zone(self, key: str) -> bool:
        return _within(key, self._failing)

    def _is_secure(self, name: str) -> bool:
        return _within(_key(name), self._secure)

    async def _query(self, name: str, rdtype: str) -> None:
        """Record the query and raise what ``DnsResolver._query`` raises for it."""
        self.queries.append((rdtype, name))
        await asyncio.sleep(0)
        key = _key(name)
        if self._in_failing_zone(key):
            raise DnsError(f"DNS query for {name} {rdtype} failed with error ErrorTimeout")
        if key in self._nxdomain or not self._exists(key):
            raise DnsError(f"{name}: nonexistent domain (NXDOMAIN)", permanent=True)

    async def mx(self, domain: str) -> list[MxRecord]:
        await self._query(domain, "MX")
        return list(self._mx.get(_key(domain), []))

    async def mx_secure(self, domain: str) -> tuple[list[MxRecord], bool]:
        return await self.mx(domain), self._is_secure(domain)

    async def addresses_secure(self, host: str) -> tuple[list[str], bool]:
        return await self.addresses(host), not _is_ip(host) and self._is_secure(host)

    async def tlsa(self, name: str) -> tuple[list[TlsaRecord], bool]:
        await self._query(name, "TLSA")
        return list(self._tlsa.get(_key(name), [])), self._is_secure(name)

    async def txt(self, name: str) -> list[str]:
        await self._query(name, "TXT")
        return list(self._txt.get(_key(name), []))

    async def ptr(self, ip: str) -> list[str]:
        name = _reverse(ip)
        await self._query(name, "PTR")
        return list(self._ptr.get(_key(name), []))

    async def addresses(self, host: str) -> list[str]:
        if _is_ip(host):
            return [host]
        out: list[str] = []
        errors: list[DnsError] = []
        known = self._addresses.get(_key(host), [])
        for rdtype, version in (("A", 4), ("AAAA", 6)):
            try:
                await self._query(host, rdtype)
            except DnsError as exc:
                errors.append(exc)
                continue
            out.extend(ip for ip in known if ipaddress.ip_address(ip).version == version)
        if not out:
            if errors:
                raise DnsError(str(errors[0]), permanent=all(e.permanent for e in errors))
            raise DnsError(f"{host} has no A or AAAA record", permanent=True)
        return out


def _within(key: str, zones: set[str]) -> bool:
    return any(key == zone or key.endswith("." + zone) for zone in zones)


def _conforms(r: FakeResolver) -> Resolver:
    return r
