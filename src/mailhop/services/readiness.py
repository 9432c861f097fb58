"""``mailhop domain check``: will Gmail, Yahoo and Microsoft take mail from a domain?

One row per check (SPF, DKIM, DMARC, ReverseDNS per sending address, MTA-STS, TLS-RPT),
each Pass, Warn or Fail with its evidence and a one-line fix; the checks live in
``mailhop.readiness``.  It only reads: the DKIM signing configs and connectors from the
store, everything else from DNS through the configured resolvers.

The sending addresses are the ones given, else ``[server] outbound_ips``, else, when
every enabled send connector delivers through smart hosts, the smart hosts' addresses;
else none (the SPF and ReverseDNS rows say so).
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from mailhop.config import Settings
from mailhop.delivery.dns import DnsError, Resolver
from mailhop.errors import ValidationError
from mailhop.model.connector import SendConnector
from mailhop.model.dkim import domain_name
from mailhop.readiness import Row, checks, dmarc, overall, spf
from mailhop.store.base import Store

JSON = dict[str, Any]


def _ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(str(text).strip()))
    except ValueError:
        raise ValidationError(f"'{text}' is not an IP address") from None


class ReadinessService:
    def __init__(self, store: Store, settings: Settings, resolver: Resolver) -> None:
        self.store = store
        self.settings = settings
        self.resolver = resolver

    async def sending_ips(self, ips: list[str] | None, all_connectors: list[SendConnector]) -> tuple[list[str], str]:
        if ips:
            return list(dict.fromkeys(_ip(i) for i in ips)), "--ip"
        if self.settings.server.outbound_ips:
            return list(dict.fromkeys(self.settings.server.outbound_ips)), "outbound_ips"
        connectors = [c for c in all_connectors if c.enabled]
        if not connectors or any(c.dns_routing_enabled for c in connectors):
            return [], "none"
        out: list[str] = []
        for connector in connectors:
            for host in connector.smart_hosts:
                try:
                    found = [host.host] if host.is_ip else await self.resolver.addresses(host.host)
                except DnsError:
                    continue
                out.extend(_ip(a) for a in found)
        out = list(dict.fromkeys(out))
        return (out, "smart hosts") if out else ([], "none")

    def _ehlo_names(self, connectors: list[SendConnector]) -> list[str]:
        names = [self.settings.server.fqdn]
        for c in connectors:
            if c.fqdn and c.fqdn.lower() not in (n.lower() for n in names):
                names.append(c.fqdn)
        return names

    async def check(self, domain: str, ips: list[str] | None = None) -> JSON:
        name = domain_name(domain)
        connectors = await self.store.connectors.list()
        sending, source = await self.sending_ips(ips, connectors)
        configs = await self.store.dkim.list()
        ehlo = self._ehlo_names(connectors)
        signing = checks.signing(configs, name)
        reverse: list[Any] = [checks.reverse_dns(self.resolver, ip, ehlo) for ip in sending]
        rows: list[Row] = list(await asyncio.gather(
            spf.check(self.resolver, self.settings.dns, name, sending, self.settings.server.fqdn),
            checks.dkim_check(self.resolver, configs, name),
            dmarc.check(self.resolver, name, signing),
            *reverse,
            checks.mta_sts(self.resolver, name),
            checks.tls_rpt(self.resolver, name),
        ))
        if not sending:
            rows.insert(3, checks.no_address_row())
        return {
            "Domain": name,
            "SendingIps": sending,
            "SendingIpsFrom": source,
            "Result": overall(rows),
            "Checks": [r.to_json() for r in rows],
        }
