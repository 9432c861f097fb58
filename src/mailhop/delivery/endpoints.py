"""The ordered list of endpoints (host, IP, port) to try for a next hop.

Smart hosts are tried in the order the connector lists them, each host's
addresses in turn.  At most ``MAX_ENDPOINTS`` are returned.  A smart host whose
name does not resolve is skipped; when none resolves, ``DnsError`` is raised with
the first error (temporary unless every name is NXDOMAIN).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailhop.delivery.dns import DnsError, Resolver
from mailhop.model.connector import SendConnector

MAX_ENDPOINTS = 20


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    ip: str
    port: int
    # The MX answer and this host's address answer were both DNSSEC-secure (DANE may apply).
    secure: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}" if ":" not in self.ip else f"[{self.ip}]:{self.port}"


async def smart_host_endpoints(connector: SendConnector, resolver: Resolver) -> list[Endpoint]:
    out: list[Endpoint] = []
    errors: list[DnsError] = []
    for sh in connector.smart_hosts:
        port = sh.port or connector.port
        if sh.is_ip:
            out.append(Endpoint(sh.host, sh.host, port))
            continue
        try:
            ips = await resolver.addresses(sh.host)
        except DnsError as exc:
            errors.append(exc)
            continue
        out.extend(Endpoint(sh.host, ip, port) for ip in ips)
    if not out and errors:
        raise DnsError(str(errors[0]), permanent=all(e.permanent for e in errors))
    return out[:MAX_ENDPOINTS]
