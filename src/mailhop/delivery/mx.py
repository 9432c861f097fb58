"""Endpoints for direct delivery: the recipient domain's MX hosts (RFC 5321 section 5).

MX hosts are tried in preference order, hosts of equal preference in random
order, each host's addresses in turn; at most ``max_mx_hosts`` hosts.  A domain
without MX records is its own implicit MX (its A/AAAA addresses).  A null MX
(RFC 7505, ``0 .``) fails the recipients for good with ``5.1.10``; a domain that
does not exist with ``5.4.4``; a DNS server failure or timeout defers them with
``451 4.4.0 DNS query failed``.  An endpoint is ``secure`` (DANE may apply) when the MX
answer and its host's address answer were DNSSEC-secure (RFC 7672 section 2.2).  MX hosts that do not resolve are skipped, and so are
addresses that are loopback, private or link-local (unless ``[delivery]
allow_private_mx``) and MX records that name an IP address.
"""

from __future__ import annotations

import ipaddress
import random
from collections import defaultdict

from mailhop.delivery.dns import DnsError, Resolver
from mailhop.delivery.endpoints import MAX_ENDPOINTS, Endpoint
from mailhop.outcome import Reply


class DeliveryDnsError(DnsError):
    """A DNS outcome that decides the recipients' fate; ``reply`` is what they get."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply), permanent=reply.permanent)
        self.reply = reply


def null_mx_reply(domain: str) -> Reply:
    return Reply(556, "5.1.10", f"Recipient address rejected: {domain} does not accept mail (null MX)")


def nxdomain_reply(domain: str) -> Reply:
    return Reply(554, "5.4.4", f"SMTPSEND.DNS.NonExistentDomain; nonexistent domain {domain}")


def dns_failed_reply(error: DnsError) -> Reply:
    return Reply(451, "4.4.0", f"DNS query failed. The error was: {error}")


def _private(ip: str) -> bool:
    """Loopback, private (RFC 1918, ULA), link-local, unspecified, multicast or reserved."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (address.is_loopback or address.is_private or address.is_link_local or address.is_unspecified
            or address.is_multicast or address.is_reserved)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
        return True
    except ValueError:
        return False


async def mx_endpoints(domain: str, port: int, resolver: Resolver, max_mx_hosts: int = 5,
                       rng: random.Random | None = None, allow_private: bool = False) -> list[Endpoint]:
    """The endpoints to try for ``domain``.  Unless ``allow_private``, an address that is loopback,
    private or link-local is skipped (a hostile domain's MX must not make the server connect to
    its own network); an MX record naming an IP address is skipped (RFC 5321 5.1: a host name)."""
    rng = rng or random.Random()
    try:
        records, mx_secure = await resolver.mx_secure(domain)
    except DnsError as exc:
        raise DeliveryDnsError(nxdomain_reply(domain) if exc.permanent else dns_failed_reply(exc)) from None
    if any(r.host in ("", ".") for r in records):
        # RFC 7505: a null MX is the only MX of a domain that takes no mail.
        raise DeliveryDnsError(null_mx_reply(domain))
    if not records:
        hosts = [domain]  # implicit MX (RFC 5321 5.1): secure when the MX denial was
    else:
        by_pref: dict[int, list[str]] = defaultdict(list)
        for r in records:
            if not _is_ip(r.host):
                by_pref[r.preference].append(r.host.lower())
        if not by_pref:
            raise DeliveryDnsError(Reply(451, "4.4.0", f"every MX record of {domain} names an IP address, "
                                                       "not a host (RFC 5321 5.1)"))
        hosts = []
        for pref in sorted(by_pref):
            group = list(dict.fromkeys(by_pref[pref]))
            rng.shuffle(group)
            hosts += group
        hosts = list(dict.fromkeys(hosts))[:max_mx_hosts]  # a host listed twice counts at its best preference
    out: list[Endpoint] = []
    errors: list[DnsError] = []
    skipped = 0
    for host in hosts:
        try:
            ips, secure = await resolver.addresses_secure(host)
        except DnsError as exc:
            errors.append(exc)
            continue
        public = ips if allow_private else [ip for ip in ips if not _private(ip)]
        skipped += len(ips) - len(public)
        out.extend(Endpoint(host, ip, port, secure=mx_secure and secure) for ip in public)
    if not out and skipped:
        raise DeliveryDnsError(Reply(451, "4.4.0", (
            f"the MX hosts of {domain} have only loopback, private or link-local addresses; they are not "
            "tried ([delivery] allow_private_mx = true allows them)")))
    if not out:
        if not records and errors and all(e.permanent for e in errors):
            raise DeliveryDnsError(nxdomain_reply(domain))
        first = errors[0] if errors else DnsError(f"no address for the MX hosts of {domain}")
        raise DeliveryDnsError(dns_failed_reply(first))
    return out[:MAX_ENDPOINTS]
