"""``tls explain``: which TLS policy applies to each MX host of a domain right now, and why.

It routes ``postmaster@<domain>`` as delivery would (or takes the connector named), looks
the MX hosts up through the delivery resolver with their DNSSEC status, and asks
``delivery.security`` what it would decide for each: DANE with the TLSA records, MTA-STS
with the cached policy and its age, the connector's own settings, or opportunistic TLS;
what a delivery would require and what would make it fail.  It sends no mail; it may fetch
an MTA-STS policy that is not cached yet, as a delivery would.
"""

from __future__ import annotations

from typing import Any

from mailhop.clock import Clock
from mailhop.config import Settings
from mailhop.delivery.dns import DnsError
from mailhop.delivery.endpoints import Endpoint
from mailhop.delivery.mta_sts import StsLookup
from mailhop.delivery.mx import mx_endpoints
from mailhop.delivery.security import (
    CONNECTOR,
    DANE,
    MTA_STS,
    OPPORTUNISTIC,
    HostPolicy,
    TransportSecurity,
)
from mailhop.errors import NotFoundError, ValidationError
from mailhop.model.address_space import is_valid_domain
from mailhop.routing.router import Router
from mailhop.store.base import Connectors

FAILS = {
    DANE: "no STARTTLS, a failed handshake, or a certificate chain that matches no usable TLSA record: deferred "
          "(4.7.5), never sent in clear text",
    MTA_STS: "no STARTTLS, a failed handshake, or a certificate not valid (WebPKI) for the MX host name: deferred "
             "(4.7.5), never sent in clear text",
    CONNECTOR: "no STARTTLS or a certificate the TlsAuthLevel refuses: deferred",
    OPPORTUNISTIC: "nothing: a host without STARTTLS gets the message in clear text",
}


def _sts_json(lookup: StsLookup | None, now: float) -> dict[str, Any] | None:
    if lookup is None:
        return None
    policy = lookup.policy
    return {
        "PolicyId": lookup.policy_id,
        "Mode": policy.mode if policy else None,
        "Mx": list(policy.mx) if policy else [],
        "MaxAge": policy.max_age if policy else None,
        "AgeSeconds": round(now - lookup.fetched_at) if lookup.fetched_at is not None else None,
        "Error": str(lookup.error) if lookup.error else None,
    }


class TlsService:
    def __init__(self, connectors: Connectors, settings: Settings, security: TransportSecurity, clock: Clock) -> None:
        self.connectors = connectors
        self.settings = settings
        self.security = security
        self.clock = clock

    async def explain(self, domain: str, connector_name: str | None = None) -> dict[str, Any]:
        domain = domain.strip().lower().rstrip(".")
        if not is_valid_domain(domain):
            raise ValidationError(f"'{domain}' is not a domain name")
        if connector_name:
            connector = await self.connectors.get(connector_name)  # NotFoundError names it
        else:
            router = Router(await self.connectors.list(), self.settings.server.name)
            found = router.route(f"postmaster@{domain}", "", 0).connector
            if found is None:
                raise NotFoundError(f"no send connector routes mail for {domain} from this server "
                                    "(mailhop route explain postmaster@" + domain + ")")
            connector = found
        out: dict[str, Any] = {
            "Domain": domain, "Connector": connector.name, "DNSRoutingEnabled": connector.dns_routing_enabled,
            "SmtpDaneMode": connector.smtp_dane_mode, "MtaStsMode": connector.mta_sts_mode,
            "RequireTLS": connector.require_tls, "TlsAuthLevel": connector.tls_auth_level,
            "Dnssec": self.settings.dns.dnssec, "MtaSts": None, "Hosts": [], "Error": None,
        }
        if not connector.dns_routing_enabled:
            hosts = [Endpoint(h.host, h.host, h.port or connector.port) for h in connector.smart_hosts]
        else:
            try:
                hosts = await mx_endpoints(domain, connector.port, self.security.resolver,
                                           self.settings.delivery.max_mx_hosts,
                                           allow_private=self.settings.delivery.allow_private_mx)
            except DnsError as exc:
                out["Error"] = str(getattr(exc, "reply", exc))
                return out
        seen: dict[str, dict[str, Any]] = {}
        for ep in hosts:
            if ep.host in seen:
                seen[ep.host]["Addresses"].append(ep.ip)
                continue
            decision_ = await self.security.decide(connector, ep, domain)
            seen[ep.host] = self._host(decision_, ep)
            if decision_.sts is not None and out["MtaSts"] is None:
                out["MtaSts"] = _sts_json(decision_.sts, self.clock.now())
        out["Hosts"] = list(seen.values())
        return out

    @staticmethod
    def _host(d: HostPolicy, ep: Endpoint) -> dict[str, Any]:
        return {
            "Host": d.host, "Port": ep.port, "Addresses": [ep.ip], "DnssecSecure": d.secure_dns, "Policy": d.policy,
            "Why": d.why, "Requires": d.requires,
            "Tlsa": [str(r) for r in d.tlsa], "UsableTlsa": [str(r) for r in d.usable_tlsa],
            "Refused": str(d.refusal) if d.refusal else None,
            "FailsWhen": None if d.refusal else FAILS.get(d.policy, "nothing: never TLS"),
        }
