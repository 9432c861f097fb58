"""DMARC: the policy record (RFC 7489), the organisational domain and DKIM alignment.

The record is TXT at ``_dmarc.<domain>``, else at ``_dmarc.<organisational domain>``
(the public suffix list's registrable domain; for a name under an unknown suffix such
as ``.test`` the last two labels), where a sub-domain's policy is ``sp`` (else ``p``).
mailhop signs mail with ``d=`` the domain of the DKIM signing config that covers the
From: domain (itself, or a parent with SubDomains), so that is what must align:
relaxed (``adkim=r``, the default) when both share the organisational domain, strict
(``adkim=s``) when they are equal.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from publicsuffixlist import PublicSuffixList

from mailhop.delivery.dns import DnsError, Resolver
from mailhop.readiness.rows import FAIL, PASS, WARN, Row, Signing, could_not_check

CHECK = "DMARC"
POLICIES = ("none", "quarantine", "reject")


@functools.cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()  # the list bundled with the package: nothing is downloaded


def org_domain(domain: str) -> str:
    """The organisational domain (RFC 7489 section 3.2): ``mail.contoso.test`` -> ``contoso.test``."""
    name = domain.lower().rstrip(".")
    found = _psl().privatesuffix(name)
    if found:
        return str(found)
    labels = name.split(".")
    return ".".join(labels[-2:])  # a public suffix itself: the last two labels, as for an unknown TLD


def aligned(signing_domain: str, domain: str, strict: bool) -> bool:
    a, b = signing_domain.lower().rstrip("."), domain.lower().rstrip(".")
    return a == b if strict else org_domain(a) == org_domain(b)


@dataclass(frozen=True, slots=True)
class DmarcRecord:
    p: str
    sp: str | None = None
    adkim: str = "r"
    aspf: str = "r"
    pct: int = 100
    rua: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)

    def policy(self, subdomain: bool) -> str:
        return (self.sp or self.p) if subdomain else self.p


class DmarcSyntaxError(ValueError):
    pass


def is_dmarc(text: str) -> bool:
    first = text.split(";", 1)[0].replace(" ", "").replace("\t", "")
    return first == "v=DMARC1"


def parse(text: str) -> DmarcRecord:
    """A DMARC record's tags; DmarcSyntaxError (one line) when it is not a valid record."""
    tags: dict[str, str] = {}
    for i, part in enumerate(p.strip() for p in text.split(";")):
        if not part:
            continue
        key, eq, value = part.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not eq or not key:
            raise DmarcSyntaxError(f"'{part}' is not a tag=value pair")
        if i == 0 and (key != "v" or value != "DMARC1"):
            raise DmarcSyntaxError("the record must start with v=DMARC1")
        tags.setdefault(key, value)
    if "v" not in tags:
        raise DmarcSyntaxError("the record must start with v=DMARC1")
    p = tags.get("p", "").lower()
    if p not in POLICIES:
        raise DmarcSyntaxError(f"p= must be none, quarantine or reject (found '{tags.get('p', '')}')"
                               if "p" in tags else "no p= tag (it must follow v=DMARC1)")
    sp = tags.get("sp", "").lower() or None
    if sp is not None and sp not in POLICIES:
        raise DmarcSyntaxError(f"sp= must be none, quarantine or reject (found '{tags['sp']}')")
    modes = {}
    for name in ("adkim", "aspf"):
        mode = tags.get(name, "r").lower()
        if mode not in ("r", "s"):
            raise DmarcSyntaxError(f"{name}= must be r or s (found '{tags[name]}')")
        modes[name] = mode
    try:
        pct = int(tags.get("pct", "100"))
    except ValueError:
        raise DmarcSyntaxError(f"pct= must be a number from 0 to 100 (found '{tags['pct']}')") from None
    if not 0 <= pct <= 100:
        raise DmarcSyntaxError(f"pct= must be a number from 0 to 100 (found '{tags['pct']}')")
    rua = tuple(u.strip() for u in tags.get("rua", "").split(",") if u.strip())
    return DmarcRecord(p, sp, modes["adkim"], modes["aspf"], pct, rua, tags)


async def _records(resolver: Resolver, name: str) -> list[str]:
    try:
        return [t for t in await resolver.txt(name) if is_dmarc(t)]
    except DnsError as exc:
        if exc.permanent:
            return []
        raise


async def check(resolver: Resolver, domain: str, signing: Signing) -> Row:
    org = org_domain(domain)
    fix_publish = f'publish TXT _dmarc.{domain} "v=DMARC1; p=none; rua=mailto:dmarc@{domain}"'
    try:
        name, records = f"_dmarc.{domain}", await _records(resolver, f"_dmarc.{domain}")
        if not records and org != domain:
            name, records = f"_dmarc.{org}", await _records(resolver, f"_dmarc.{org}")
    except DnsError as exc:
        return could_not_check(CHECK, exc)
    if not records:
        looked = f"_dmarc.{domain}" + (f" nor _dmarc.{org}" if org != domain else "")
        return Row(CHECK, FAIL, f"no DMARC record: no v=DMARC1 TXT record at {looked} "
                                "(Gmail, Yahoo and Microsoft require one of bulk senders)", fix_publish)
    if len(records) > 1:
        quoted = "; ".join(f'"{r}"' for r in records)
        return Row(CHECK, FAIL, f"{len(records)} DMARC records at {name} (receivers apply none): {quoted}",
                   f"keep one v=DMARC1 record at {name}")
    text, inherited = records[0], name != f"_dmarc.{domain}"
    shown = f'{name}: "{text}"' + (f" (of the organisational domain {org})" if inherited else "")
    try:
        record = parse(text)
    except DmarcSyntaxError as exc:
        return Row(CHECK, FAIL, f"{shown}: invalid: {exc}",
                   f'correct the record at {name}, e.g. "v=DMARC1; p=none; rua=mailto:dmarc@{org}"')
    policy = record.policy(subdomain=inherited)
    strict = record.adkim == "s"
    if signing.domain is None:
        is_aligned, alignment = False, f"mail from {domain} is not DKIM-signed ({signing.issue})"
        sign_fix = signing.fix
    else:
        is_aligned = aligned(signing.domain, domain, strict)
        alignment = (f"DKIM d={signing.domain} {'aligns' if is_aligned else 'does not align'} with {domain} "
                     f"({'strict' if strict else 'relaxed'} alignment)")
        sign_fix = (f"sign with d={domain} (mailhop dkim new {domain}) or relax the record to adkim=r"
                    if strict else f"sign mail from {domain} with d= in {org}: mailhop dkim new {domain}")
    notes = [f"policy {policy}" + (" (monitoring only)" if policy == "none" else ""), alignment]
    if record.pct < 100:
        notes.append(f"applied to {record.pct}% of failing mail")
    if not record.rua:
        notes.append("no rua=: no aggregate reports")
    evidence = f"{shown}; " + "; ".join(notes)
    if policy in ("quarantine", "reject"):
        if is_aligned:
            return Row(CHECK, PASS, evidence)
        return Row(CHECK, FAIL, f"p={policy} and mail from {domain} is not DKIM-signed with an aligned domain: "
                                f"{evidence}", sign_fix)
    if is_aligned:
        return Row(CHECK, WARN, evidence,
                   "move to p=quarantine once the reports (rua=) are clean")
    return Row(CHECK, WARN, evidence, f"{sign_fix}; then move to p=quarantine")
