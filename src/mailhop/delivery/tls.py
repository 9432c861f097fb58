"""TLS policy of outbound sessions: what each send connector demands, as a ``TlsPlan``.

- ``IgnoreSTARTTLS``: never TLS.  Otherwise STARTTLS whenever offered (opportunistic,
  the certificate is not checked) ...
- ``RequireTLS``: ... and never in clear text: no STARTTLS, a failed handshake or a
  stripped STARTTLS fails the attempt (temporary), it never falls back.
- ``TlsAuthLevel`` (with RequireTLS): ``EncryptionOnly`` checks nothing;
  ``CertificateValidation`` verifies the chain and validity against the trust anchors
  (the system store and/or ``[tls] ca_file``) and revocation when ``[tls] crl_file``
  is given; ``DomainValidation`` also matches the certificate's names against
  ``TlsDomain`` (``*.contoso.com`` admits the domain and its subdomains) or, when
  it is empty, the recipient domain (the domain or a host within it).
- ``TlsCertificateName``: the client certificate presented, from ``[[certificates]]``
  by name or by Exchange's ``<I>issuer<S>subject`` form.
- ``TlsWrapper`` or port 465: implicit TLS.

A certificate that cannot be loaded (missing file, no private key) fails the attempt
with a LastError that says so, like Exchange's ``NoCredentials``.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from mailhop.config import CertificateSettings, Settings, TlsSettings
from mailhop.delivery.endpoints import Endpoint
from mailhop.errors import ConfigError, ValidationError
from mailhop.model.connector import SendConnector
from mailhop.smtp.session import TlsPlan


def _dn_parts(dn: str) -> frozenset[str]:
    """A distinguished name as a set of normalized ``TYPE=value`` parts (order-insensitive)."""
    parts = re.split(r"(?<!\\)[,+]", dn)
    return frozenset(re.sub(r"\s*=\s*", "=", p.strip()).lower() for p in parts if p.strip())


def parse_exchange_name(name: str) -> tuple[frozenset[str], frozenset[str]] | None:
    """``<I>CN=Issuer, O=Org<S>CN=mail.contoso.com`` -> (issuer parts, subject parts)."""
    m = re.fullmatch(r"\s*<I>(.*)<S>(.*)\s*", name, re.S | re.I)
    if not m:
        return None
    return _dn_parts(m.group(1)), _dn_parts(m.group(2))


@lru_cache(maxsize=64)
def _certificate_names(cert_file: str) -> tuple[frozenset[str], frozenset[str]]:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    return _dn_parts(cert.issuer.rfc4514_string()), _dn_parts(cert.subject.rfc4514_string())


def find_certificate(certificates: list[CertificateSettings], name: str) -> CertificateSettings:
    for cert in certificates:
        if cert.name.lower() == name.strip().lower():
            return cert
    wanted = parse_exchange_name(name)
    if wanted is not None:
        for cert in certificates:
            try:
                if _certificate_names(str(cert.cert_file)) == wanted:
                    return cert
            except (OSError, ValueError):
                continue
    raise ConfigError(f"TlsCertificateName '{name}' matches no [[certificates]] entry of this server")


def check_certificate(certificates: list[CertificateSettings], connector: SendConnector) -> None:
    """The connector's TlsCertificateName names a certificate of this server (CLI and API alike)."""
    if connector.tls_certificate_name:
        try:
            find_certificate(certificates, connector.tls_certificate_name)
        except ConfigError as exc:
            raise ValidationError(f"TlsCertificateName: {exc}") from None


def cert_dns_names(peercert: dict[str, Any]) -> list[str]:
    names = [value for kind, value in peercert.get("subjectAltName", ()) if kind == "DNS"]
    if not names:  # no SAN: the subject CN, as older certificates carry it
        for rdn in peercert.get("subject", ()):
            names += [value for key, value in rdn if key == "commonName"]
    return [n.lower().rstrip(".") for n in names]


def _name_covers(cert_name: str, host: str) -> bool:
    """RFC 6125: exact, or a wildcard in the left-most label covering exactly one label."""
    if cert_name == host:
        return True
    if cert_name.startswith("*."):
        base = cert_name[2:]
        head, _, rest = host.partition(".")
        return bool(head) and rest == base
    return False


def domain_matches(names: list[str], expected: str, subdomains: bool) -> bool:
    expected = expected.lower().rstrip(".")
    if expected.startswith("*."):
        expected, subdomains = expected[2:], True
    for name in names:
        if _name_covers(name, expected):
            return True
        if subdomains:
            bare = name[2:] if name.startswith("*.") else name
            if bare == expected or bare.endswith("." + expected):
                return True
    return False


def name_check(expected: str, subdomains: bool, label: str = "") -> Callable[[dict[str, Any]], str | None]:
    """A ``TlsPlan.verify_peer``: the peer certificate's names must cover ``expected`` (why not, else)."""
    def check(peercert: dict[str, Any]) -> str | None:
        names = cert_dns_names(peercert)
        if domain_matches(names, expected, subdomains):
            return None
        return f"{label}certificate names {', '.join(names) or '(none)'} do not match {expected}"

    return check


class TlsPolicy:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._contexts: dict[tuple[bool, str | None], ssl.SSLContext] = {}

    def context(self, verify: bool, certificate: str | None) -> ssl.SSLContext:
        key = (verify, certificate)
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = build_context(self.settings.tls, verify)
            if certificate:
                cert = find_certificate(self.settings.certificates, certificate)
                try:
                    ctx.load_cert_chain(str(cert.cert_file), str(cert.key_file))
                except (OSError, ssl.SSLError) as exc:
                    raise ConfigError(
                        f"client certificate '{cert.name}' cannot be used (NoCredentials): {exc}"
                    ) from None
            self._contexts[key] = ctx
        return ctx

    def plan(self, connector: SendConnector, endpoint: Endpoint, domain: str) -> TlsPlan:
        if connector.ignore_starttls:
            return TlsPlan(starttls=False)
        level = connector.tls_auth_level if connector.require_tls else None
        verify = level in ("CertificateValidation", "DomainValidation")
        context = self.context(verify, connector.tls_certificate_name)
        check = None
        if level == "DomainValidation":
            # TlsDomain, or the recipient domain: then any host within it.
            check = name_check(connector.tls_domain or domain, subdomains=connector.tls_domain is None)

        return TlsPlan(
            starttls=True, required=connector.require_tls, context=context,
            server_hostname=None if _is_ip(endpoint.host) else endpoint.host,
            implicit=connector.implicit_tls, verify_peer=check,
        )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def build_context(tls: TlsSettings, verify: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False  # names are checked by DomainValidation's own rules
    if not verify:
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx.verify_mode = ssl.CERT_REQUIRED
    if tls.use_system_ca:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if tls.ca_file is not None:
        ctx.load_verify_locations(cafile=str(tls.ca_file))
    if tls.crl_file is not None:
        ctx.load_verify_locations(cafile=str(tls.crl_file))
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return ctx
