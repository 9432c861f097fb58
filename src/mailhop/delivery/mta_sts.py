"""MTA-STS (RFC 8461): a domain's policy, fetched over HTTPS, cached in the store, matched per MX host.

``StsPolicies.lookup(domain)`` gives the policy in force for a domain, or None:

1. the TXT record ``_mta-sts.<domain>`` (``v=STSv1; id=...``) says whether there is a
   policy and its id; it is asked at most every ``recheck`` seconds per domain;
2. a cached policy (the store's, shared by a cluster and kept across restarts) with the
   same id is used as it is until a day (a quarter of a shorter max_age) before it expires;
3. otherwise the policy is fetched from ``https://mta-sts.<domain>/.well-known/mta-sts.txt``:
   the name resolved through the delivery resolver (``[dns] nameservers``), the certificate
   validated as WebPKI (the system CAs plus ``[tls] ca_file``) for that name, no redirect
   followed, at most 64 KB, ``fetch_timeout`` for the whole request; a policy that parses
   replaces the cached one.
4. When the TXT lookup or the fetch fails, or the TXT record is gone, the cached policy
   stays in force until its ``max_age`` runs out (RFC 8461 section 5.1); the failure is kept
   in ``StsLookup.error`` for TLS reporting.

The HTTP/1.1 exchange is ``delivery.https`` (h11 over asyncio streams), so the policy host's
address comes from our resolver, not the operating system's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
from dataclasses import dataclass
from typing import Protocol

from mailhop.clock import Clock
from mailhop.delivery import https
from mailhop.delivery.dns import DnsError, Resolver
from mailhop.errors import MailhopError

log = logging.getLogger(__name__)

MAX_POLICY = 64 * 1024
MAX_AGE_LIMIT = 31_557_600  # RFC 8461 section 3.2: at most one year
RETRY_AFTER_FAILURE = 60.0  # a failed TXT lookup or fetch is not tried again sooner
REFRESH_BEFORE = 86_400.0   # refetch a policy this long before it expires (a quarter of a shorter max_age)


class StsError(MailhopError):
    def __init__(self, message: str, result_type: str) -> None:
        super().__init__(message)
        self.result_type = result_type  # TLS-RPT: sts-policy-fetch-error, sts-policy-invalid, sts-webpki-invalid


@dataclass(frozen=True, slots=True)
class StsPolicy:
    mode: str                  # enforce | testing | none
    mx: tuple[str, ...]
    max_age: int
    text: str

    def allows(self, host: str) -> bool:
        return any(mx_matches(pattern, host) for pattern in self.mx)


@dataclass(frozen=True, slots=True)
class CachedPolicy:
    """What the store keeps per domain."""

    domain: str
    policy_id: str
    text: str
    fetched_at: float
    expires_at: float

    def to_json(self) -> str:
        return json.dumps({"domain": self.domain, "id": self.policy_id, "text": self.text,
                           "fetched_at": self.fetched_at, "expires_at": self.expires_at})

    @classmethod
    def from_json(cls, data: str) -> CachedPolicy:
        d = json.loads(data)
        return cls(d["domain"], d["id"], d["text"], float(d["fetched_at"]), float(d["expires_at"]))


class StsCache(Protocol):
    """The store's MTA-STS policy cache (one row per domain, shared by a cluster)."""

    async def get(self, domain: str) -> CachedPolicy | None: ...
    async def put(self, policy: CachedPolicy) -> None: ...
    async def list(self) -> list[CachedPolicy]: ...


@dataclass(frozen=True, slots=True)
class StsLookup:
    policy: StsPolicy | None
    policy_id: str | None = None
    fetched_at: float | None = None
    error: StsError | None = None  # why the newest policy could not be had (the cached one may serve)


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 section 4.1: exact, or ``*.`` covering exactly one left-most label."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host


def parse_txt(records: list[str]) -> str | None:
    """The policy id of the one ``v=STSv1`` record, None when there is none (or several)."""
    found = [r for r in records if re.match(r"v=STSv1\s*(;|$)", r.strip())]
    if len(found) != 1:
        return None
    m = re.search(r"(?:^|;)\s*id=([A-Za-z0-9]{1,32})\s*(;|$)", found[0])
    return m.group(1) if m else None


def parse_policy(text: str) -> StsPolicy:
    """The policy file's ``key: value`` lines; StsError (sts-policy-invalid) when it is not one."""
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise StsError(f"policy line '{line[:60]}' is not 'key: value'", "sts-policy-invalid")
        values.setdefault(key.strip().lower(), []).append(value.strip())
    if values.get("version") != ["STSv1"]:
        raise StsError("the policy has no 'version: STSv1'", "sts-policy-invalid")
    mode = (values.get("mode") or [""])[0]
    if mode not in ("enforce", "testing", "none"):
        raise StsError(f"the policy's mode '{mode}' is not enforce, testing or none", "sts-policy-invalid")
    age = (values.get("max_age") or [""])[0]
    if not age.isdigit() or len(age) > 10:
        raise StsError(f"the policy's max_age '{age}' is not a number of seconds", "sts-policy-invalid")
    mx = tuple(m.lower() for m in values.get("mx", []))
    if mode != "none" and not mx:
        raise StsError(f"a policy in mode {mode} needs at least one mx line", "sts-policy-invalid")
    return StsPolicy(mode, mx, min(int(age), MAX_AGE_LIMIT), text)


async def fetch_policy(domain: str, resolver: Resolver, context: ssl.SSLContext, timeout: float,
                       port: int = 443) -> str:
    """The policy text of ``domain`` over HTTPS; StsError says why not."""
    host = f"mta-sts.{domain}"
    try:
        ips = await resolver.addresses(host)
    except DnsError as exc:
        raise StsError(f"{host} does not resolve: {exc}", "sts-policy-fetch-error") from None
    last: StsError | None = None
    for ip in ips:
        try:
            async with asyncio.timeout(timeout):
                return await _get(host, ip, port, context)
        except StsError as exc:
            if exc.result_type != "sts-policy-fetch-error":
                raise
            last = exc
        except TimeoutError:
            last = StsError(f"{host} ({ip}) did not answer within {timeout:g}s", "sts-policy-fetch-error")
    assert last is not None
    raise last


async def _get(host: str, ip: str, port: int, context: ssl.SSLContext) -> str:
    try:
        status, body = await https.request(host, ip, port, context, "GET", "/.well-known/mta-sts.txt",
                                           [("Accept", "text/plain")], limit=MAX_POLICY)
    except https.HttpsError as exc:
        kind = {"certificate": "sts-webpki-invalid", "too-large": "sts-policy-invalid"}.get(exc.kind,
                                                                                          "sts-policy-fetch-error")
        raise StsError(str(exc), kind) from None
    if status != 200:  # 3xx included: RFC 8461 3.3 forbids following redirects
        raise StsError(f"https://{host}/.well-known/mta-sts.txt answered HTTP {status}", "sts-policy-fetch-error")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise StsError(f"the policy of {host} is not UTF-8 text", "sts-policy-invalid") from None


@dataclass(slots=True)
class _Known:
    checked_at: float
    lookup: StsLookup
    cached: CachedPolicy | None = None


class StsPolicies:
    """The policies in force, per domain: the store's cache in front, DNS and HTTPS behind."""

    def __init__(self, cache: StsCache, resolver: Resolver, context: ssl.SSLContext, clock: Clock,
                 fetch_timeout: float = 10.0, recheck: float = 300.0) -> None:
        self.cache = cache
        self.resolver = resolver
        self.context = context
        self.clock = clock
        self.fetch_timeout = fetch_timeout
        self.recheck = recheck
        self._known: dict[str, _Known] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def lookup(self, domain: str) -> StsLookup:
        domain = domain.lower().rstrip(".")
        known = self._known.get(domain)
        if known is not None and self._current(known):
            return known.lookup
        async with self._locks.setdefault(domain, asyncio.Lock()):  # one refresh per domain at a time
            known = self._known.get(domain)
            if known is not None and self._current(known):
                return known.lookup
            cached, result = await self._refresh(domain)
            self._known[domain] = _Known(self.clock.now(), result, cached)
            return result

    def _current(self, known: _Known) -> bool:
        """Still good without asking DNS: within ``recheck`` (after a failure, at least
        ``RETRY_AFTER_FAILURE``, so a dead policy host is not asked at every connection)."""
        now = self.clock.now()
        window = max(self.recheck, RETRY_AFTER_FAILURE) if known.lookup.error else self.recheck
        return now - known.checked_at < window and _fresh(known.cached, now, 0)

    async def _refresh(self, domain: str) -> tuple[CachedPolicy | None, StsLookup]:
        now = self.clock.now()
        cached = await self.cache.get(domain)
        if cached is not None and cached.expires_at <= now:
            cached = None
        try:
            policy_id = parse_txt(await self.resolver.txt(f"_mta-sts.{domain}"))
        except DnsError as exc:
            if exc.permanent:
                policy_id = None
            else:
                return cached, _from_cache(cached, StsError(f"TXT _mta-sts.{domain}: {exc}", "sts-policy-fetch-error"))
        if policy_id is None:
            return cached, _from_cache(cached, None)
        if cached is not None and cached.policy_id == policy_id and _fresh(cached, now, _margin(cached)):
            return cached, _from_cache(cached, None)
        try:
            text = await fetch_policy(domain, self.resolver, self.context, self.fetch_timeout)
            policy = parse_policy(text)
        except StsError as exc:
            log.info("MTA-STS policy of %s: %s", domain, exc)
            return cached, _from_cache(cached, exc)
        fresh = CachedPolicy(domain, policy_id, text, now, now + policy.max_age)
        await self.cache.put(fresh)
        return fresh, StsLookup(policy, policy_id, now)


def _fresh(cached: CachedPolicy | None, now: float, margin: float) -> bool:
    return cached is None or cached.expires_at - margin > now


def _margin(cached: CachedPolicy) -> float:
    return min(REFRESH_BEFORE, (cached.expires_at - cached.fetched_at) / 4)


def _from_cache(cached: CachedPolicy | None, error: StsError | None) -> StsLookup:
    if cached is None:
        return StsLookup(None, error=error)
    try:
        return StsLookup(parse_policy(cached.text), cached.policy_id, cached.fetched_at, error)
    except StsError as exc:
        return StsLookup(None, error=exc)
