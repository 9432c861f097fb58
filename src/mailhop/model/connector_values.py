"""The small values a send connector is made of: smart hosts and sender scopes.

``SmartHost.parse`` reads Exchange's forms (``host``, ``host:port``, ``[ip]``,
``[ip]:port``); ``sender_scope_specificity`` ranks how closely a ``SenderDomains``
entry matches an envelope sender.  Bad input raises ``ValidationError``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from mailhop.errors import ValidationError
from mailhop.model.address_space import domain_specificity, is_valid_domain


@dataclass(frozen=True, slots=True)
class SmartHost:
    host: str
    port: int | None = None
    is_ip: bool = False

    def __str__(self) -> str:
        text = f"[{self.host}]" if self.is_ip else self.host
        return f"{text}:{self.port}" if self.port else text

    @classmethod
    def parse(cls, text: str) -> SmartHost:
        raw = text.strip()
        host, port = raw, None
        m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", raw)
        if m:
            host, port_text = m.group(1), m.group(2)
            port = int(port_text) if port_text else None
        elif raw.count(":") == 1:
            host, port_text = raw.split(":")
            if not port_text.isdigit():
                raise ValidationError(f"SmartHosts: '{raw}' has an invalid port")
            port = int(port_text)
        if port is not None and not 1 <= port <= 65535:
            raise ValidationError(f"SmartHosts: '{raw}' has port {port}, outside 1-65535")
        try:
            ipaddress.ip_address(host)
            return cls(host=host, port=port, is_ip=True)
        except ValueError:
            pass
        if not is_valid_domain(host):
            raise ValidationError(
                f"SmartHosts: '{raw}' is neither a host name nor an IP address "
                "(use host, host:port or [ip])"
            )
        return cls(host=host.lower(), port=port)


def sender_scope_specificity(scope: str, sender: str) -> int | None:
    """How specifically a sender scope matches an envelope sender.

    ``user@contoso.com`` (3) > ``contoso.com`` (2) > ``*.contoso.com`` (1).
    The null sender matches no scope.
    """
    if not sender:
        return None
    sender = sender.lower()
    scope = scope.lower()
    if "@" in scope:
        return 3 if sender == scope else None
    domain = sender.rpartition("@")[2]
    spec = domain_specificity(scope, domain)
    if spec is None:
        return None
    return 2 if spec[1] else 1


def check_sender_scope(text: str) -> str:
    value = text.strip().lower()
    if "@" in value:
        local, _, domain = value.rpartition("@")
        if local and is_valid_domain(domain) and not re.search(r"[\s<>]", local):
            return value
    elif (value.startswith("*.") and is_valid_domain(value[2:])) or is_valid_domain(value):
        return value
    raise ValidationError(
        f"SenderDomains: '{text}' is not a domain (contoso.com, *.contoso.com) "
        "or an address (user@contoso.com)"
    )
