"""DANE for SMTP (RFC 7672): which TLSA records are usable, and whether a peer's chain matches.

Usable records are DANE-TA(2) and DANE-EE(3), selectors 0 (the whole certificate) and 1
(the public key), matching types 0 (exact), 1 (SHA-256) and 2 (SHA-512); PKIX-TA(0) and
PKIX-EE(1) are unusable for SMTP (RFC 7672 section 3.1.3), and so is anything unknown.

``check`` takes the usable records and the peer's chain as sent (DER, leaf first):

- DANE-EE: the leaf's certificate or key matches; nothing else is checked (no name,
  no expiry, RFC 7672 section 3.1.1).
- DANE-TA: a certificate of the chain (or, for ``2 0 0``, the record itself) matches
  and is the trust anchor: the leaf must chain to it, be valid now and carry the MX
  host name (the TLSA base domain) in its subjectAltName; ``cryptography``'s X.509
  verifier checks the chain, the validity and the name (the Web PKI's rules for CA
  certificates, not its rules for leaf extensions).

It returns None when the peer is authenticated, else why not (for LastError and the
tracking log).  Nothing here does I/O.
"""

from __future__ import annotations

import datetime
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification

from mailhop.delivery.dns import TlsaRecord

DANE_TA, DANE_EE = 2, 3
# The leaf under a DANE-TA anchor comes from a private CA, not the Web PKI: the CA/B Forum's
# rules for leaf extensions (a critical subjectAltName, say) are not DANE's (RFC 7672 3.1.2).
# The chain, the CA certificates' constraints, the validity and the name are still checked.
_EE_POLICY = verification.ExtensionPolicy.permit_all().require_present(
    x509.SubjectAlternativeName, verification.Criticality.AGNOSTIC, None)


def usable(records: list[TlsaRecord]) -> list[TlsaRecord]:
    return [r for r in records if r.usage in (DANE_TA, DANE_EE) and r.selector in (0, 1) and r.mtype in (0, 1, 2)]


def _selected(cert: x509.Certificate, selector: int) -> bytes:
    if selector == 0:
        return cert.public_bytes(serialization.Encoding.DER)
    return cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)


def _digest(data: bytes, mtype: int) -> bytes:
    if mtype == 1:
        return hashlib.sha256(data).digest()
    if mtype == 2:
        return hashlib.sha512(data).digest()
    return data


def matches(record: TlsaRecord, cert: x509.Certificate) -> bool:
    return _digest(_selected(cert, record.selector), record.mtype) == record.data


def _anchors(records: list[TlsaRecord], chain: list[x509.Certificate]) -> list[tuple[x509.Certificate, int]]:
    """Trust anchors named by DANE-TA records: (certificate, its index in the chain or -1)."""
    out: list[tuple[x509.Certificate, int]] = []
    for r in records:
        if r.usage != DANE_TA:
            continue
        if r.selector == 0 and r.mtype == 0:
            try:
                out.append((x509.load_der_x509_certificate(r.data), -1))
            except ValueError:
                pass
            continue
        out += [(c, i) for i, c in enumerate(chain) if i > 0 and matches(r, c)]
    return out


def _parse(chain_der: list[bytes]) -> list[x509.Certificate] | str:
    """The chain as certificates, or why it cannot be checked."""
    try:
        chain = [x509.load_der_x509_certificate(d) for d in chain_der]
    except ValueError:
        return "the server's certificate could not be parsed"
    return chain or "the server sent no certificate"


def check(records: list[TlsaRecord], chain_der: list[bytes], host: str,
          now: datetime.datetime | None = None) -> str | None:
    """None when ``chain_der`` (leaf first) is authenticated by ``records`` for MX ``host``."""
    chain = _parse(chain_der)
    if isinstance(chain, str):
        return chain
    leaf = chain[0]
    if any(r.usage == DANE_EE and matches(r, leaf) for r in records):
        return None
    anchors = _anchors(records, chain)
    if not anchors:
        return (f"no TLSA record of {host} matches the certificate chain the server sent "
                f"({len(chain)} certificate(s); records: {', '.join(str(r) for r in records)})")
    problems: list[str] = []
    for anchor, index in anchors:
        intermediates = chain[1:index] if index > 0 else chain[1:]
        try:
            verifier = (verification.PolicyBuilder().store(verification.Store([anchor]))
                        .time(now or datetime.datetime.now(datetime.UTC))
                        .extension_policies(ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
                                            ee_policy=_EE_POLICY)
                        .build_server_verifier(x509.DNSName(host)))
            verifier.verify(leaf, intermediates)
            return None
        except (verification.VerificationError, ValueError) as exc:
            problems.append(str(exc))
    return f"the chain to the DANE-TA trust anchor does not verify for {host}: {problems[0]}"


def webpki_problem(chain_der: list[bytes], host: str, anchors: list[x509.Certificate],
                   now: datetime.datetime | None = None) -> str | None:
    """None when the chain (leaf first) is valid under the Web PKI for ``host`` with ``anchors``;
    else why not.  For MTA-STS ``testing``, where a failure is counted, never enforced."""
    chain = _parse(chain_der)
    if isinstance(chain, str):
        return chain
    try:
        verifier = (verification.PolicyBuilder().store(verification.Store(anchors))
                    .time(now or datetime.datetime.now(datetime.UTC)).build_server_verifier(x509.DNSName(host)))
        verifier.verify(chain[0], chain[1:])
        return None
    except (verification.VerificationError, ValueError) as exc:
        text = str(exc)
        if "expired" in text or "not valid after" in text.lower():
            return f"certificate expired: {text}"
        if "subject" in text.lower() and "match" in text.lower():
            return f"certificate names do not match {host}: {text}"
        return f"certificate verify failed: {text}"
