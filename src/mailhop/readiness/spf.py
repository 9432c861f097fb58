"""SPF: the domain's record, evaluated by pyspf for each sending address.

pyspf (``import spf``) does the evaluation, RFC 7208's rules and limits (10 DNS-querying
terms, 2 void lookups) included.  Its own lookups go to module-level ``spf.DNSLookup``
(the system's resolver); ``_Query`` overrides ``query.dns`` so that every lookup of one
evaluation asks a dnspython resolver of its own, built from ``[dns] nameservers`` as
``delivery.dns.DnsResolver`` is: no global state is touched.  pyspf is synchronous, so
an evaluation runs in a thread.

Besides the sending addresses, the record is evaluated once for an address nobody lists
(192.0.2.1, TEST-NET-1): every term is then looked at, which shows a syntax error or a
record that needs more than 10 lookups even when a sending address matches early.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.resolver
import spf  # type: ignore[import-untyped]

from mailhop.config import DnsSettings
from mailhop.delivery.dns import DnsError, Resolver, nameserver
from mailhop.readiness.rows import FAIL, PASS, WARN, Row, could_not_check

CHECK = "SPF"
PROBE_V4, PROBE_V6 = "192.0.2.1", "2001:db8::1"
_SPF = re.compile(r"^v=spf1(\s|$)", re.IGNORECASE)


def is_spf(text: str) -> bool:
    return bool(_SPF.match(text))


def make_resolver(settings: DnsSettings) -> dns.resolver.Resolver:
    if settings.nameservers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [nameserver(n) for n in settings.nameservers]
    else:
        resolver = dns.resolver.Resolver()
    resolver.timeout = settings.timeout
    resolver.lifetime = settings.lifetime
    return resolver


class _Query(spf.query):  # type: ignore[misc]
    """``spf.query`` whose DNS lookups go to ``resolver``, not to ``spf.DNSLookup``."""

    def __init__(self, resolver: dns.resolver.Resolver, ip: str, sender: str, helo: str) -> None:
        super().__init__(i=ip, s=sender, h=helo, strict=True)
        self._resolver = resolver

    def dns(self, name: Any, qtype: str, cnames: Any = None, ignore_void: bool = False) -> list[Any]:
        if not name:
            raise spf.PermError("Invalid query: empty name")
        key = str(name).rstrip(".").lower()
        if not all(0 < len(label) < 64 for label in key.split(".")):
            return []  # not a DNS name: no result, as pyspf's own lookup
        result: list[Any] | None = self.cache.get((key, qtype))
        if result is None:
            result = self._lookup(key, qtype)
            self.cache[(key, qtype)] = result
        if not result and not ignore_void:
            self.void_lookups += 1
            if self.void_lookups > spf.MAX_VOID_LOOKUPS:
                raise spf.PermError(f"Void lookup limit of {spf.MAX_VOID_LOOKUPS} exceeded")
        return result

    def _lookup(self, name: str, qtype: str) -> list[Any]:
        try:
            answer = self._resolver.resolve(name, qtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.Timeout:
            raise spf.TempError(f"DNS query for {name} {qtype} timed out") from None
        except dns.resolver.NoNameservers:
            raise spf.TempError(f"DNS query for {name} {qtype} failed with error ServerFailure") from None
        except dns.exception.DNSException as exc:
            raise spf.TempError(f"DNS query for {name} {qtype} failed: {exc}") from None
        out: list[Any] = []
        for r in answer:
            if qtype in ("A", "AAAA"):
                out.append(r.address)
            elif qtype == "MX":
                out.append((int(r.preference), r.exchange.to_text(omit_final_dot=True)))
            elif qtype == "PTR":
                out.append(r.target.to_text(omit_final_dot=True))
            elif qtype in ("TXT", "SPF"):
                out.append(tuple(r.strings))
        return out


@dataclass(frozen=True, slots=True)
class Evaluation:
    ip: str
    result: str        # pass, fail, softfail, neutral, none, permerror, temperror
    explanation: str
    lookups: int


def evaluate(settings: DnsSettings, domain: str, ip: str, helo: str) -> Evaluation:
    """pyspf's check_host() of ``ip`` for mail from postmaster@``domain`` (synchronous)."""
    q = _Query(make_resolver(settings), ip, f"postmaster@{domain}", helo)
    result, _code, explanation = q.check()
    return Evaluation(ip, str(result), str(explanation), int(q.lookups))


def _evaluate_all(settings: DnsSettings, domain: str, ips: Sequence[str],
                  helo: str) -> tuple[Evaluation, list[Evaluation]]:
    probe = PROBE_V6 if ips and all(ipaddress.ip_address(i).version == 6 for i in ips) else PROBE_V4
    return evaluate(settings, domain, probe, helo), [evaluate(settings, domain, ip, helo) for ip in ips]


def suggested(ips: Sequence[str]) -> str:
    terms = [f"ip{ipaddress.ip_address(ip).version}:{ip}" for ip in ips] or ["ip4:ADDRESS"]
    return "v=spf1 " + " ".join(terms) + " -all"


def _mechanism(ip: str) -> str:
    return f"ip{ipaddress.ip_address(ip).version}:{ip}"


async def check(resolver: Resolver, settings: DnsSettings, domain: str, ips: Sequence[str],
                helo: str) -> Row:
    try:
        texts = await resolver.txt(domain)
    except DnsError as exc:
        if not exc.permanent:
            return could_not_check(CHECK, exc)
        return Row(CHECK, FAIL, f"no SPF record: {domain} does not exist in DNS (NXDOMAIN)",
                   f'publish TXT {domain} "{suggested(ips)}"')
    records = [t for t in texts if is_spf(t)]
    if not records:
        return Row(CHECK, FAIL, f"no SPF record: no TXT record at {domain} starts with v=spf1",
                   f'publish TXT {domain} "{suggested(ips)}"')
    if len(records) > 1:
        quoted = "; ".join(f'"{r}"' for r in records)
        return Row(CHECK, FAIL, f"{len(records)} SPF records at {domain} (receivers see a permerror): {quoted}",
                   f"merge them into one TXT record at {domain} starting with v=spf1")
    record = records[0]
    probe, evaluations = await asyncio.to_thread(_evaluate_all, settings, domain, list(ips), helo)
    shown = f'"{record}" at {domain}'
    for e in [probe, *evaluations]:
        if e.result == "temperror":
            return could_not_check(CHECK, f"{shown}: {e.explanation}")
    for e in [probe, *evaluations]:
        if e.result == "permerror":
            if "DNS lookups" in e.explanation:
                return Row(CHECK, FAIL, f"{shown}: permerror, more than {spf.MAX_LOOKUP} DNS lookups "
                                        f"({e.explanation})",
                           f"reduce include:, a, mx, ptr, exists: and redirect= terms to at most "
                           f"{spf.MAX_LOOKUP} lookups (list addresses with ip4:/ip6: instead)")
            return Row(CHECK, FAIL, f"{shown}: permerror ({e.explanation})",
                       f"correct the SPF record at {domain}, e.g. \"{suggested(ips)}\"")
    lookups = f"{probe.lookups} DNS lookup{'s' if probe.lookups != 1 else ''}"
    if not evaluations:
        return Row(CHECK, WARN, f"{shown} parses ({lookups}); no sending address known to evaluate it for",
                   "no sending address known: give --ip or set [server] outbound_ips")
    detail = ", ".join(f"{e.ip}: {e.result}" for e in evaluations)
    evidence = f"{shown} ({lookups}); {detail}"
    failed = [e.ip for e in evaluations if e.result == "fail"]
    weak = [e.ip for e in evaluations if e.result not in ("pass", "fail")]
    if failed:
        return Row(CHECK, FAIL, f"{evidence}: not authorised: {', '.join(failed)}",
                   f"add {' '.join(_mechanism(ip) for ip in failed + weak)} to the SPF record at {domain} "
                   "before its all")
    if weak:
        results = "/".join(sorted({e.result for e in evaluations if e.ip in weak}))
        return Row(CHECK, WARN, f"{evidence}: only {results} for {', '.join(weak)}",
                   f"add {' '.join(_mechanism(ip) for ip in weak)} to the SPF record at {domain}, and end it with -all")
    if probe.result == "pass":
        return Row(CHECK, WARN, f"{evidence}; it also authorises {probe.ip}, an address nobody sends from "
                                "(+all or a too wide range?)",
                   f"list only your sending addresses, e.g. \"{suggested(ips)}\"")
    return Row(CHECK, PASS, evidence)
