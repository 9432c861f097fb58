"""Paths and parameters of MAIL and RCPT: parsing and validation (RFC 5321 section 4.1.2).

``parse_path`` splits ``<user@domain> PARAMS``; ``valid_address`` checks a mailbox
(dot-atom or quoted local part, a domain or an address literal, SMTPUTF8 only when
the transaction asked for it); ``parse_params`` reads ``KEY[=VALUE]`` words.  Each
returns None or False for what it refuses; the server turns that into a 501/555.
"""

from __future__ import annotations

import ipaddress
import re

from mailhop.model.address_space import is_valid_domain

_PATH = re.compile(r"^\s*<([^<>]*)>\s*(.*)$")
_BARE_PATH = re.compile(r"^\s*(\S+@\S+)\s*(.*)$")


def parse_path(arg: str, smtputf8_allowed: bool) -> tuple[str, str] | None:
    """Split ``<user@domain> PARAMS``; returns (address, params) or None if malformed."""
    m = _PATH.match(arg) or _BARE_PATH.match(arg)
    if not m:
        return None
    address, params = m.group(1).strip(), m.group(2)
    if address.startswith("@"):  # an obsolete source route: <@a,@b:user@c>
        _, colon, address = address.partition(":")
        if not colon or not address:
            return None  # never let a malformed path turn into the null sender
    if address and not valid_address(address, smtputf8_allowed):
        return None
    return address, params


def valid_address(address: str, smtputf8_allowed: bool = True) -> bool:
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or len(local) > 64 or len(address) > 254:
        return False
    if not address.isascii() and not smtputf8_allowed:
        return False
    if local.startswith('"') and local.endswith('"') and len(local) >= 2:
        pass
    elif re.search(r"[\s<>(),;:@\\\"\[\]]", local) or local.startswith(".") or local.endswith(".") or ".." in local:
        return False
    if domain.startswith("[") and domain.endswith("]"):
        literal = domain[1:-1].removeprefix("IPv6:")
        try:
            ipaddress.ip_address(literal)
        except ValueError:
            return False
        return True
    return is_valid_domain(domain)


def parse_params(text: str) -> dict[str, str | None] | None:
    params: dict[str, str | None] = {}
    for item in text.split():
        key, eq, value = item.partition("=")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*", key):
            return None
        params[key.upper()] = value if eq else None
    return params
