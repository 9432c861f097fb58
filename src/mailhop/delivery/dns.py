"""Name resolution for delivery, behind a small ``Resolver`` protocol.

``SystemResolver`` asks the operating system (``getaddrinfo``: /etc/hosts, then
DNS) for host addresses.  Errors are raised as ``DnsError`` with ``permanent``
set when the name does not exist (NXDOMAIN) and cleared for everything that
may heal (SERVFAIL, timeouts).
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import Protocol

from mailhop.errors import MailhopError


class DnsError(MailhopError):
    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class MxRecord:
    preference: int
    host: str


class Resolver(Protocol):
    async def addresses(self, host: str) -> list[str]:
        """IPv4 and IPv6 addresses of ``host``; DnsError when there are none."""
        ...

    async def mx(self, domain: str) -> list[MxRecord]:
        """MX records of ``domain`` ([] when it has none); DnsError on failure."""
        ...


class SystemResolver:
    async def addresses(self, host: str) -> list[str]:
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

    async def mx(self, domain: str) -> list[MxRecord]:
        raise DnsError("MX lookups need the DNS resolver ([dns] settings)")
