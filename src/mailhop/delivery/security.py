"""Which TLS policy governs a session to one MX host, and the ``TlsPlan`` that enforces it.

For a DNS-routing connector, per MX host, in this order (RFC 7672 section 2.2, RFC 8461
section 2):

1. DANE, when ``SmtpDaneMode`` is not None, the MX answer and the host's address answer
   were DNSSEC-secure and ``_<port>._tcp.<host>`` has TLSA records: TLS is required and the
   peer must match a usable record (``delivery.dane``); when none is usable, TLS without
   authentication.  A TLSA lookup that fails for a secure host (SERVFAIL, bogus, timeout)
   defers that host with ``4.7.5``: never a fall-back to weaker policies.
2. MTA-STS, when ``MtaStsMode`` is Opportunistic and the domain has a policy in
   ``enforce``: a host outside the policy's ``mx`` patterns is skipped (``4.7.5``), the
   others need TLS with a WebPKI-valid certificate for the MX host name.  ``testing`` and
   ``none`` policies deliver as without one.
3. The connector's own RequireTLS/TlsAuthLevel (``delivery.tls``), else opportunistic
   STARTTLS.

``SmtpDaneMode Mandatory`` refuses a host that step 1 does not cover (``4.7.5``, the
reason said).

A message's own demand (RFC 8689) comes on top: REQUIRETLS needs validated TLS, so where
neither DANE (with a usable record) nor MTA-STS enforce applies the certificate is checked
against the Web PKI and the MX host name (policy ``webpki``); ``TLS-Required: No`` sets DANE
and MTA-STS aside for that message (policy ``tls-required-no``), the connector's own
settings still apply.  ``decide`` is what ``mailhop tls explain`` shows; ``plan`` is the pool's
``TlsPlanner`` and raises ``ConnectionFailure`` for a host that must not be tried.
"""

from __future__ import annotations

import dataclasses
import logging
import ssl
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from mailhop.clock import Clock
from mailhop.config import Settings, TlsSettings
from mailhop.delivery import dane
from mailhop.delivery.dns import DnsError, Resolver, TlsaRecord
from mailhop.delivery.endpoints import Endpoint
from mailhop.delivery.mta_sts import StsCache, StsLookup, StsPolicies, StsPolicy
from mailhop.delivery.tls import TlsPolicy, name_check
from mailhop.delivery.tls_results import PolicyKey, TlsCounter, result_type
from mailhop.errors import ConnectionFailure
from mailhop.model.connector import SendConnector
from mailhop.outcome import Reply
from mailhop.smtp.session import TlsPlan

log = logging.getLogger(__name__)
SYSTEM_CA_FILE = "/etc/ssl/certs/ca-certificates.crt"  # Debian's, when OpenSSL names none
DANE, MTA_STS, CONNECTOR, OPPORTUNISTIC, NO_TLS = "dane", "mta-sts", "connector", "opportunistic", "none"
WEBPKI = "webpki"                      # REQUIRETLS without DANE or MTA-STS: the Web PKI and the host name
TLS_REQUIRED_NO = "tls-required-no"    # the message's "TLS-Required: No" set DANE and MTA-STS aside
# The policies whose TLS failures are 4.7.5 and never fall back to clear text, as LastError names them.
POLICY_LABELS = {DANE: "DANE", MTA_STS: "MTA-STS", WEBPKI: "REQUIRETLS"}


@dataclass(frozen=True, slots=True)
class HostPolicy:
    host: str
    policy: str                       # dane | mta-sts | connector | opportunistic | none
    why: str                          # one line: why this policy applies
    requires: str                     # what a delivery to this host requires
    secure_dns: bool = False          # MX and address answers DNSSEC-secure
    tlsa: tuple[TlsaRecord, ...] = ()
    usable_tlsa: tuple[TlsaRecord, ...] = ()
    sts: StsLookup | None = None
    refusal: Reply | None = None      # set: this host is not tried, and why


def _refuse(host: str, policy: str, why: str, **kw: Any) -> HostPolicy:
    return HostPolicy(host, policy, why, "nothing: this host is not tried",
                      refusal=Reply(451, "4.7.5", why), **kw)


@dataclass(slots=True)
class Report:
    """What TLS reporting needs of one session: its policy, and whether a failure was counted
    already (MTA-STS testing counts one without refusing the session)."""

    key: PolicyKey
    counted: bool = False


def report_key(decision: HostPolicy, domain: str) -> PolicyKey:
    """RFC 8460 section 4.4: the policy a session was made under."""
    if decision.policy == DANE or (decision.tlsa and decision.refusal is not None):
        return PolicyKey(domain, "tlsa", tuple(str(r) for r in decision.tlsa), (decision.host,))
    policy = decision.sts.policy if decision.sts is not None else None
    if policy is not None:
        return PolicyKey(domain, "sts", tuple(line for line in policy.text.splitlines() if line.strip()), policy.mx)
    return PolicyKey(domain, "no-policy-found")


class TransportSecurity:
    def __init__(self, tls: TlsPolicy, resolver: Resolver, sts: StsPolicies | None,
                 counter: TlsCounter | None = None, anchors: Callable[[], list[x509.Certificate]] | None = None) -> None:
        self.tls = tls
        self.resolver = resolver
        self.sts = sts
        self.counter = counter
        self.anchors = anchors or (lambda: [])

    def outcome(self, plan: TlsPlan, endpoint: Endpoint, tls_up: bool, failure: Reply | None) -> None:
        """The pool's ``TlsOutcome``: one session attempt to ``endpoint`` under ``plan`` ended:
        TLS up (``tls_up``) or ``failure`` (the reply of a failed handshake or validation)."""
        report = plan.report
        if self.counter is None or not isinstance(report, Report) or report.counted:
            return
        if failure is None and tls_up:
            self.counter.success(report.key)
            return
        self._failed(report, endpoint, failure.text if failure is not None else
                     f"{endpoint.host} did not offer STARTTLS")

    def _failed(self, report: Report | None, endpoint: Endpoint, text: str, kind: str | None = None) -> None:
        """Count one failed session for TLS reporting (``kind``: its RFC 8460 result type, else
        read from ``text``); the session's success is then not counted."""
        if report is None or self.counter is None:
            return
        self.counter.failure(report.key, kind or result_type(text), endpoint.host, endpoint.ip, text)
        report.counted = True

    async def decide(self, connector: SendConnector, endpoint: Endpoint, domain: str) -> HostPolicy:
        host = endpoint.host
        if not connector.dns_routing_enabled or connector.ignore_starttls:
            return self._connector_policy(connector, host, "a smart-host connector" if not connector.dns_routing_enabled
                                          else "IgnoreSTARTTLS is true")
        dane_mode = connector.smtp_dane_mode
        tlsa_name = f"_{endpoint.port}._tcp.{host}"
        if dane_mode != "None" and endpoint.secure:
            try:
                records, secure = await self.resolver.tlsa(tlsa_name)
            except DnsError as exc:
                return _refuse(host, DANE, f"DANE: the TLSA lookup for {tlsa_name} failed ({exc}); the MX host is "
                                           "DNSSEC-secure, so it is not tried without DANE", secure_dns=True)
            if records and secure:
                usable = dane.usable(records)
                if usable:
                    return HostPolicy(host, DANE, f"DANE: {len(usable)} usable TLSA record(s) at {tlsa_name}",
                                      "STARTTLS, and a certificate chain that matches a TLSA record "
                                      "(DANE-EE: the key; DANE-TA: the trust anchor and the name " + host + ")",
                                      True, tuple(records), tuple(usable))
                return HostPolicy(host, DANE, f"DANE: the TLSA records at {tlsa_name} are all unusable "
                                              "(RFC 7672 3.1.3)", "STARTTLS (no authentication)", True, tuple(records))
        if dane_mode == "Mandatory":
            reason = ("has no TLSA records" if endpoint.secure else
                      "is not DNSSEC-secure (MX and address records must be signed)")
            return _refuse(host, DANE, f"SmtpDaneMode Mandatory: {host} {reason}", secure_dns=endpoint.secure)
        lookup: StsLookup | None = None
        if connector.mta_sts_mode != "None" and self.sts is not None:
            lookup = await self.sts.lookup(domain)
            policy = lookup.policy
            if policy is not None and policy.mode == "enforce":
                if not policy.allows(host):
                    return _refuse(host, MTA_STS, f"MTA-STS: {host} is not in the enforced policy of {domain} "
                                                  f"(mx: {', '.join(policy.mx)})", secure_dns=endpoint.secure,
                                   sts=lookup)
                return HostPolicy(host, MTA_STS, f"MTA-STS: {domain} enforces its policy (id {lookup.policy_id})",
                                  f"STARTTLS, and a certificate valid (WebPKI) for {host}", endpoint.secure,
                                  sts=lookup)
            if policy is not None:
                base = self._connector_policy(connector, host, f"the MTA-STS policy of {domain} is in mode "
                                                               f"{policy.mode}, which enforces nothing")
                return dataclasses.replace(base, secure_dns=endpoint.secure, sts=lookup)
        why = "no DANE and no MTA-STS policy" + (f" (MTA-STS: {lookup.error})" if lookup and lookup.error else "")
        return dataclasses.replace(self._connector_policy(connector, host, why), secure_dns=endpoint.secure,
                                   sts=lookup if lookup is not None and lookup.error else None)

    @staticmethod
    def _connector_policy(connector: SendConnector, host: str, why: str) -> HostPolicy:
        if connector.ignore_starttls:
            return HostPolicy(host, NO_TLS, why, "nothing (never TLS)")
        if connector.require_tls:
            level = connector.tls_auth_level or "EncryptionOnly"
            return HostPolicy(host, CONNECTOR, f"{why}: the connector's RequireTLS (TlsAuthLevel {level})",
                              f"STARTTLS ({level})")
        return HostPolicy(host, OPPORTUNISTIC, f"{why}: opportunistic STARTTLS",
                          "nothing: STARTTLS when offered, unauthenticated; clear text otherwise")

    async def plan(self, connector: SendConnector, endpoint: Endpoint, domain: str,
                   demand: str = "normal") -> TlsPlan:
        """The pool's ``TlsPlanner``: ``demand`` is the message's (``MessageInfo.tls_demand``)."""
        decision = await self.decide(connector, endpoint, domain)
        report = Report(report_key(decision, domain)) if connector.dns_routing_enabled else None
        if demand == "optional" and decision.policy in (DANE, MTA_STS):
            # "TLS-Required: No" (RFC 8689 section 5): the sender asks that DANE and MTA-STS not
            # hold the message back; the connector's own settings still apply.
            return dataclasses.replace(self.tls.plan(connector, endpoint, domain), policy=TLS_REQUIRED_NO)
        if decision.refusal is not None:
            self._failed(report, endpoint, decision.refusal.text)
            raise ConnectionFailure(decision.refusal, "policy")
        if decision.policy == DANE and (decision.usable_tlsa or demand != "requiretls"):
            return dataclasses.replace(self._dane_plan(connector, endpoint, list(decision.usable_tlsa)), report=report)
        if decision.policy == MTA_STS:
            return dataclasses.replace(self._webpki_plan(connector, endpoint, endpoint.host, MTA_STS), report=report)
        base = self.tls.plan(connector, endpoint, domain)
        if demand == "requiretls" and not base.verify_peer:
            # RFC 8689 section 4.2.1: only over TLS whose certificate was validated: the Web PKI
            # against the MX host name (or the TlsDomain of a smart-host connector).
            return self._webpki_plan(connector, endpoint, connector.tls_domain or endpoint.host, WEBPKI)
        sts = decision.sts.policy if decision.sts is not None else None
        if report is not None and sts is not None and sts.mode == "testing" and base.starttls and not base.verify_chain:
            # MTA-STS testing: deliver as without a policy, but count what enforce would have refused.
            return dataclasses.replace(base, policy=decision.policy, report=report,
                                       verify_chain=self._testing_check(report, endpoint, sts))
        error = decision.sts.error if decision.sts is not None and sts is None else None
        if error is not None:
            # The domain says it has a policy that could not be had (RFC 8460 4.3.2): the session,
            # made without it, is counted as that failure.
            self._failed(report, endpoint, str(error), error.result_type)
        return dataclasses.replace(base, policy=decision.policy, report=report)

    def _testing_check(self, report: Report, endpoint: Endpoint, sts: StsPolicy) -> Callable[[list[bytes]], None]:
        def check(chain: list[bytes]) -> None:
            try:
                problem = (None if sts.allows(endpoint.host) else f"{endpoint.host} is not in the MTA-STS policy") \
                    or dane.webpki_problem(chain, endpoint.host, self.anchors())
            except Exception:  # counting must never stop a delivery that testing mode lets through
                log.exception("MTA-STS testing check of %s failed", endpoint.host)
                return
            if problem:
                self._failed(report, endpoint, f"MTA-STS testing: {problem}", result_type(problem))
        return check

    def _dane_plan(self, connector: SendConnector, endpoint: Endpoint, records: list[TlsaRecord]) -> TlsPlan:
        check: Callable[[list[bytes]], str | None] | None = None
        if records:
            def check(chain: list[bytes]) -> str | None:
                problem = dane.check(records, chain, endpoint.host)
                return f"DANE authentication failed: {problem}" if problem else None
        return TlsPlan(starttls=True, required=True, context=self.tls.context(False, connector.tls_certificate_name),
                       server_hostname=endpoint.host, verify_chain=check, policy=DANE)

    def _webpki_plan(self, connector: SendConnector, endpoint: Endpoint, name: str, policy: str) -> TlsPlan:
        return TlsPlan(starttls=True, required=True, context=self.tls.context(True, connector.tls_certificate_name),
                       server_hostname=endpoint.host, verify_peer=name_check(name, False, f"{POLICY_LABELS[policy]}: "),
                       policy=policy, implicit=connector.implicit_tls)

def transport_security(settings: Settings, cache: StsCache, resolver: Resolver, clock: Clock,
                       counter: TlsCounter | None = None) -> TransportSecurity:
    """The server's TLS policies: the connector's settings, DANE, and MTA-STS over ``cache``;
    session outcomes counted in ``counter`` for TLS reporting."""
    tls = TlsPolicy(settings)
    sts = StsPolicies(cache, resolver, tls.context(True, None), clock, settings.tls.mta_sts_fetch_timeout,
                      settings.tls.mta_sts_recheck_interval)
    return TransportSecurity(tls, resolver, sts, counter, trust_anchors(settings.tls))


def trust_anchors(tls: TlsSettings) -> Callable[[], list[x509.Certificate]]:
    """The CA certificates WebPKI checks trust (the system's and ``ca_file``), read once when
    first needed (MTA-STS testing checks certificates without the handshake doing it)."""
    loaded: list[x509.Certificate] = []
    read = False

    def anchors() -> list[x509.Certificate]:
        nonlocal read
        if not read:  # once, even when nothing could be read (it is logged then)
            read = True
            files = [ssl.get_default_verify_paths().cafile or SYSTEM_CA_FILE] if tls.use_system_ca else []
            files += [str(tls.ca_file)] if tls.ca_file else []
            for name in files:
                try:
                    with warnings.catch_warnings():  # a system CA with a serial RFC 5280 forbids
                        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                        loaded.extend(x509.load_pem_x509_certificates(Path(name).read_bytes()))
                except (OSError, ValueError) as exc:
                    log.warning("trust anchors in %s cannot be read: %s", name, exc)
        return loaded

    return anchors
