"""DKIM publication, reverse DNS of the sending addresses, and the MTA-STS and TLS-RPT records.

DKIM: the config that signs mail from the domain is found as the keyring finds it (the
domain's own, else the nearest parent's with SubDomains; only enabled configs sign),
and the active selectors' records are compared with its keys (``dkim.published``).

Reverse DNS: an address's PTR names, each looked up forwards; a name that resolves back
to the address is forward-confirmed (FCrDNS), and it should be the name the server says
in EHLO (``[server] fqdn`` or a connector's Fqdn).

MTA-STS and TLS-RPT: the TXT records only (the HTTPS policy of MTA-STS is not fetched).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence

from mailhop.delivery.dns import DnsError, Resolver
from mailhop.dkim import published
from mailhop.model.dkim import DkimConfig, config_domains
from mailhop.readiness.rows import FAIL, PASS, WARN, Row, Signing, could_not_check

NO_ADDRESS_FIX = "no sending address known: give --ip or set [server] outbound_ips"


# --- DKIM -----------------------------------------------------------------------------------------

def signing_config(configs: Iterable[DkimConfig], domain: str) -> tuple[DkimConfig | None, DkimConfig | None]:
    """(the enabled config that signs mail from ``domain``, the nearest covering config whatever
    its state): the domain's own first, then each parent with SubDomains."""
    by_domain = {c.domain: c for c in configs}
    nearest: DkimConfig | None = None
    for candidate in config_domains(domain):
        config = by_domain.get(candidate)
        if config is None or not config.covers(domain):
            continue
        nearest = nearest or config
        if config.enabled:
            return config, nearest
    return None, nearest


def signing(configs: Iterable[DkimConfig], domain: str) -> Signing:
    config, nearest = signing_config(configs, domain)
    if config is not None:
        return Signing(config.domain)
    if nearest is not None:
        return Signing(None, f"the DKIM signing config {nearest.domain} is disabled",
                       f"enable DKIM signing: mailhop dkim set {nearest.domain} --enabled true")
    return Signing(None, f"no DKIM signing config covers {domain}",
                   f"sign mail from {domain}: mailhop dkim new {domain}")


async def dkim_check(resolver: Resolver, configs: Sequence[DkimConfig], domain: str) -> Row:
    config, nearest = signing_config(configs, domain)
    if config is None:
        if nearest is not None:
            return Row("DKIM", FAIL, f"the DKIM signing config {nearest.domain} is disabled: mail from {domain} "
                                     "is not signed", f"mailhop dkim set {nearest.domain} --enabled true")
        return Row("DKIM", FAIL, f"no DKIM signing config covers {domain}: its mail is not signed",
                   f"no DKIM signing config: mailhop dkim new {domain}")
    via = "" if config.domain == domain else f" (the config of {config.domain}, SubDomains)"
    keys = config.keys(config.active)
    if not keys:
        return Row("DKIM", FAIL, f"the DKIM signing config {config.domain} has no active keys",
                   f"mailhop dkim rotate {config.domain} --force")
    checks = await published.check_keys(resolver, config.domain, keys)
    errors = [c for c in checks if c.state == published.ERROR]
    if errors:
        return could_not_check("DKIM", "; ".join(c.detail for c in errors))
    details = "; ".join(c.detail for c in checks)
    wrong = [c for c in checks if c.state != published.MATCH]
    evidence = f"signed with d={config.domain}{via}: {details}"
    if wrong:
        fix = "; ".join(f'publish TXT {c.name} "{c.key.record}"' for c in wrong)
        return Row("DKIM", FAIL, evidence, fix)
    return Row("DKIM", PASS, evidence)


# --- reverse DNS ----------------------------------------------------------------------------------

def _same_ip(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


async def reverse_dns(resolver: Resolver, ip: str, ehlo_names: Sequence[str]) -> Row:
    ehlo = ", ".join(ehlo_names)
    try:
        names = await resolver.ptr(ip)
    except DnsError as exc:
        if not exc.permanent:
            return could_not_check("ReverseDNS", exc, ip)
        names = []
    if not names:
        return Row("ReverseDNS", FAIL, f"{ip} has no PTR record",
                   f"ask the owner of {ip} (your ISP or cloud) for a PTR record {ip} -> {ehlo_names[0]}, "
                   f"with an A record {ehlo_names[0]} -> {ip}", ip)
    confirmed, unconfirmed, failures = [], [], []
    for name in names:
        try:
            forward = await resolver.addresses(name)
        except DnsError as exc:
            if not exc.permanent:
                failures.append(str(exc))
            unconfirmed.append(f"{name} (no address)")
            continue
        if any(_same_ip(a, ip) for a in forward):
            confirmed.append(name)
        else:
            unconfirmed.append(f"{name} (-> {', '.join(forward)})")
    if not confirmed:
        if failures:
            return could_not_check("ReverseDNS", "; ".join(failures), ip)
        return Row("ReverseDNS", FAIL, f"PTR {ip} -> {', '.join(unconfirmed)}: not forward-confirmed, "
                                       f"no PTR name resolves back to {ip}",
                   f"add an A record {names[0]} -> {ip}, or point the PTR of {ip} at a name that resolves "
                   "to it", ip)
    lowered = {n.lower() for n in ehlo_names}
    matching = [n for n in confirmed if n.lower() in lowered]
    if matching:
        return Row("ReverseDNS", PASS, f"PTR {ip} -> {matching[0]} -> {ip} (forward-confirmed), "
                                       "the EHLO name", address=ip)
    return Row("ReverseDNS", WARN, f"PTR {ip} -> {confirmed[0]} -> {ip} (forward-confirmed), but the EHLO "
                                   f"name is {ehlo}",
               f"set [server] fqdn (or the connector's Fqdn) to {confirmed[0]}, or the PTR of {ip} to "
               f"{ehlo_names[0]}", ip)


def no_address_row() -> Row:
    return Row("ReverseDNS", WARN, "no sending address known: nothing to look up", NO_ADDRESS_FIX)


# --- MTA-STS and TLS-RPT --------------------------------------------------------------------------

def _tags(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(";"):
        key, eq, value = part.strip().partition("=")
        if eq and key.strip():
            out.setdefault(key.strip(), value.strip())
    return out


_STS_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")


def mta_sts_problem(text: str) -> str | None:
    """What is wrong with an MTA-STS TXT record (RFC 8461 section 3.1), None when it is valid."""
    if not re.match(r"^v=STSv1\s*(;|$)", text):
        return "it must start with v=STSv1;"
    sts_id = _tags(text).get("id")
    if sts_id is None:
        return "no id= tag"
    if not _STS_ID.match(sts_id):
        return f"id= must be 1 to 32 letters and digits (found '{sts_id}')"
    return None


def tls_rpt_problem(text: str) -> str | None:
    """What is wrong with a TLS-RPT TXT record (RFC 8460 section 3), None when it is valid."""
    if not re.match(r"^v=TLSRPTv1\s*(;|$)", text):
        return "it must start with v=TLSRPTv1;"
    rua = _tags(text).get("rua")
    if not rua:
        return "no rua= tag"
    bad = [u for u in (u.strip() for u in rua.split(",")) if not u.startswith(("mailto:", "https:"))]
    if bad:
        return f"rua= takes mailto: or https: URIs (found '{bad[0]}')"
    return None


async def _txt_or_none(resolver: Resolver, name: str) -> list[str]:
    try:
        return await resolver.txt(name)
    except DnsError as exc:
        if exc.permanent:
            return []
        raise


async def _record_check(resolver: Resolver, check: str, name: str, version: str,
                        problem: Callable[[str], str | None],
                        optional: str) -> Row:
    try:
        texts = await _txt_or_none(resolver, name)
    except DnsError as exc:
        return could_not_check(check, exc)
    records = [t for t in texts if t.startswith(f"v={version}")]
    if not records:
        return Row(check, WARN, f"no {check} record at {name}", optional)
    if len(records) > 1:
        return Row(check, WARN, f"{len(records)} {check} records at {name}: "
                                + "; ".join(f'"{r}"' for r in records), f"keep one v={version} record at {name}")
    wrong = problem(records[0])
    if wrong:
        return Row(check, WARN, f'{name}: "{records[0]}": malformed: {wrong}', f"correct the record at {name}")
    return Row(check, PASS, f'{name}: "{records[0]}"')


async def mta_sts(resolver: Resolver, domain: str) -> Row:
    row = await _record_check(
        resolver, "MTA-STS", f"_mta-sts.{domain}", "STSv1", mta_sts_problem,
        f"optional: serve a policy at https://mta-sts.{domain}/.well-known/mta-sts.txt and publish "
        f'TXT _mta-sts.{domain} "v=STSv1; id=20260101"')
    if row.result == PASS:
        return Row(row.check, PASS, row.evidence + " (the HTTPS policy is not fetched)")
    return row


async def tls_rpt(resolver: Resolver, domain: str) -> Row:
    return await _record_check(
        resolver, "TLS-RPT", f"_smtp._tls.{domain}", "TLSRPTv1", tls_rpt_problem,
        f'optional: publish TXT _smtp._tls.{domain} "v=TLSRPTv1; rua=mailto:tlsrpt@{domain}"')
