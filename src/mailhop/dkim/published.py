"""What DNS publishes for a config's selectors, against the keys it holds.

For each key, the TXT records at ``<selector>._domainkey.<domain>`` (through the
configured resolvers) are read as DKIM key records: ``match`` when one holds this key,
``mismatch`` when there is a key record but with another key (or the other key type),
``missing`` when there is none (NXDOMAIN, no TXT, or no DKIM record among them), and
``error`` when DNS did not answer (temporary: nothing is concluded from it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailhop.delivery.dns import DnsError, Resolver
from mailhop.dkim.keys import matches, parse_record
from mailhop.model.dkim import MISMATCH, NOT_PUBLISHED, VALID, PublicKey

MATCH, MISSING, DIFFERENT, ERROR = "match", "missing", "mismatch", "error"


@dataclass(frozen=True, slots=True)
class KeyCheck:
    key: PublicKey
    name: str
    state: str
    detail: str


async def check_key(resolver: Resolver, domain: str, key: PublicKey) -> KeyCheck:
    name = key.dns_name(domain)
    try:
        texts = await resolver.txt(name)
    except DnsError as exc:
        if exc.permanent:
            return KeyCheck(key, name, MISSING, f"{name}: no such name in DNS")
        return KeyCheck(key, name, ERROR, str(exc))
    published = [p for p in (parse_record(t) for t in texts) if p is not None]
    if any(matches(p, key.algorithm, key.public) for p in published):
        return KeyCheck(key, name, MATCH, f"{name}: published")
    if published:
        return KeyCheck(key, name, DIFFERENT, f"{name}: the published key is not this selector's key")
    return KeyCheck(key, name, MISSING, f"{name}: no DKIM key record")


async def check_keys(resolver: Resolver, domain: str, keys: Sequence[PublicKey]) -> list[KeyCheck]:
    return [await check_key(resolver, domain, key) for key in keys]


def status(checks: Sequence[KeyCheck]) -> str | None:
    """The Status of a set of keys: Valid, KeyMismatch, KeyNotPublished; None when DNS did
    not answer for one of them (the previous status stands)."""
    states = {c.state for c in checks}
    if ERROR in states:
        return None
    if DIFFERENT in states:
        return MISMATCH
    if MISSING in states or not checks:
        return NOT_PUBLISHED
    return VALID


def published(checks: Sequence[KeyCheck]) -> bool:
    return bool(checks) and all(c.state == MATCH for c in checks)
