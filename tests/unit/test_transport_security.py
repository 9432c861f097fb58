"""The rules of DANE, MTA-STS and their order, without the network (the integration tests have it)."""

from __future__ import annotations

import datetime as dt
import hashlib
import ssl

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mailhop.config import from_mapping
from mailhop.delivery import dane
from mailhop.delivery.dns import TlsaRecord
from mailhop.delivery.endpoints import Endpoint
from mailhop.delivery.mta_sts import (
    CachedPolicy,
    StsError,
    StsPolicies,
    mx_matches,
    parse_policy,
    parse_txt,
)
from mailhop.delivery.security import TransportSecurity
from mailhop.delivery.tls import TlsPolicy
from mailhop.delivery.tls_results import PolicyKey, TlsCounter, result_type
from mailhop.errors import ConnectionFailure, ValidationError
from mailhop.model.connector import SendConnector, new_connector, update_connector
from mailhop.services.tls_reports import parse_rua, report_json
from mailhop.testing.clock import VirtualClock
from mailhop.testing.resolver import FakeResolver
from mailhop.testing.store import MemoryStsCache, MemoryTlsReports

# --- MTA-STS: the TXT record, the policy file, the mx patterns ---------------------------------


def test_txt_record_gives_the_policy_id_of_exactly_one_sts_record() -> None:
    assert parse_txt(["v=STSv1; id=20260101T000000"]) == "20260101T000000"
    assert parse_txt(["v=spf1 -all", "v=STSv1;id=abc;"]) == "abc"
    assert parse_txt(["v=STSv1; id=1", "v=STSv1; id=2"]) is None  # RFC 8461 3.1: several is none
    assert parse_txt(["v=STSv1;"]) is None and parse_txt([]) is None
    assert parse_txt(["v=STSv1; id=has-a-dash"]) is None  # id is 1*32 alphanumerics


def test_policy_file_is_parsed_and_checked() -> None:
    p = parse_policy("version: STSv1\r\nmode: enforce\r\nmx: mail.example.test\r\nmx: *.example.test\r\n"
                     "max_age: 604800\r\n")
    assert (p.mode, p.mx, p.max_age) == ("enforce", ("mail.example.test", "*.example.test"), 604800)
    assert parse_policy("version: STSv1\nmode: none\nmax_age: 99999999999\n".replace("99999999999", "9999999999")
                        ).max_age == 31_557_600  # capped at one year
    for bad in ("mode: enforce\nmx: a.test\nmax_age: 1\n",                 # no version
                "version: STSv1\nmode: enforce\nmax_age: 1\n",             # enforce without mx
                "version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n",  # unknown mode
                "version: STSv1\nmode: testing\nmx: a.test\nmax_age: soon\n",
                "<html>not a policy</html>"):
        with pytest.raises(StsError) as info:
            parse_policy(bad)
        assert info.value.result_type == "sts-policy-invalid"


def test_mx_patterns_match_one_label_under_a_wildcard() -> None:
    assert mx_matches("*.example.test", "mx1.example.test")
    assert not mx_matches("*.example.test", "a.mx1.example.test")
    assert not mx_matches("*.example.test", "example.test")
    assert mx_matches("Mail.Example.Test.", "mail.example.test")
    assert not mx_matches("mail.example.test", "mail.example.test.evil.test")


async def test_a_cached_policy_stays_in_force_while_dns_fails_and_not_after_it_expires() -> None:
    clock = VirtualClock(1_000_000.0)
    cache = MemoryStsCache()
    text = "version: STSv1\nmode: enforce\nmx: mx.fabrikam.test\nmax_age: 3600\n"
    await cache.put(CachedPolicy("fabrikam.test", "7", text, clock.now(), clock.now() + 3600))
    sts = StsPolicies(cache, FakeResolver(failing={"fabrikam.test"}), ssl.create_default_context(), clock, recheck=0)
    got = await sts.lookup("fabrikam.test")
    assert got.policy is not None and got.policy.mode == "enforce" and got.policy_id == "7"
    assert got.error is not None and got.error.result_type == "sts-policy-fetch-error"
    await clock.advance(3601)
    assert (await sts.lookup("fabrikam.test")).policy is None


# --- DANE: which records count, what matches ---------------------------------------------------


def _der(cert: trustme.LeafCert | trustme.CA) -> bytes:
    pem = cert.cert_chain_pems[0].bytes() if isinstance(cert, trustme.LeafCert) else cert.cert_pem.bytes()
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def _spki(der: bytes, mtype: int = 1) -> bytes:
    spki = x509.load_der_x509_certificate(der).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest() if mtype == 1 else hashlib.sha512(spki).digest()


def test_only_dane_ta_and_dane_ee_with_known_selectors_and_types_are_usable() -> None:
    records = [TlsaRecord(u, s, m, b"x") for u in range(5) for s in range(3) for m in range(4)]
    assert {(r.usage, r.selector, r.mtype) for r in dane.usable(records)} == {
        (u, s, m) for u in (2, 3) for s in (0, 1) for m in (0, 1, 2)}


def test_dane_ee_checks_the_key_only_not_the_name_nor_the_expiry() -> None:
    ca = trustme.CA()
    now = dt.datetime.now(dt.UTC)
    leaf = ca.issue_cert("somewhere.else.test", not_before=now - dt.timedelta(days=9),
                         not_after=now - dt.timedelta(days=1))
    der = _der(leaf)
    assert dane.check([TlsaRecord(3, 1, 2, _spki(der, 2))], [der], "mx.fabrikam.test") is None
    assert dane.check([TlsaRecord(3, 0, 0, der)], [der], "mx.fabrikam.test") is None
    assert "no TLSA record" in (dane.check([TlsaRecord(3, 1, 1, bytes(32))], [der], "mx.fabrikam.test") or "")


def test_dane_ta_checks_the_chain_and_the_name() -> None:
    ca = trustme.CA()
    ta = TlsaRecord(2, 1, 1, _spki(_der(ca)))
    good = _der(ca.issue_cert("mx.fabrikam.test"))
    assert dane.check([ta], [good, _der(ca)], "mx.fabrikam.test") is None
    assert "does not verify" in (dane.check([ta], [good, _der(ca)], "mx2.fabrikam.test") or "")
    # The anchor itself in a 2 0 0 record: the server need not send it.
    assert dane.check([TlsaRecord(2, 0, 0, _der(ca))], [good], "mx.fabrikam.test") is None
    other = trustme.CA()
    forged = _der(other.issue_cert("mx.fabrikam.test"))
    assert dane.check([ta], [forged, _der(ca)], "mx.fabrikam.test") is not None


# --- the order of policies, and the connector settings -------------------------------------------


def _security(resolver: FakeResolver) -> TransportSecurity:
    settings = from_mapping({"server": {"name": "EXCH01"}})
    return TransportSecurity(TlsPolicy(settings), resolver, None)


def _internet(**values: str) -> SendConnector:
    return new_connector({"Name": "To Internet", "Usage": "Internet", "AddressSpaces": "*", **values}, "EXCH01")


async def test_a_failing_tlsa_lookup_for_a_secure_host_refuses_it_with_4_7_5() -> None:
    resolver = FakeResolver(secure={"fabrikam.test"}, failing={"_25._tcp.mx.fabrikam.test"},
                            addresses={"mx.fabrikam.test": "192.0.2.1"})
    ep = Endpoint("mx.fabrikam.test", "192.0.2.1", 25, secure=True)
    with pytest.raises(ConnectionFailure) as info:
        await _security(resolver).plan(_internet(), ep, "fabrikam.test")
    assert info.value.reply.enhanced == "4.7.5" and "TLSA lookup" in info.value.reply.text


async def test_dane_applies_only_to_secure_hosts_and_mandatory_refuses_the_rest() -> None:
    record = TlsaRecord(3, 1, 1, bytes(32))
    resolver = FakeResolver(secure={"fabrikam.test"}, tlsa={"_25._tcp.mx.fabrikam.test": [record]},
                            addresses={"mx.fabrikam.test": "192.0.2.1"})
    security = _security(resolver)
    secure = await security.decide(_internet(), Endpoint("mx.fabrikam.test", "192.0.2.1", 25, secure=True),
                                   "fabrikam.test")
    assert secure.policy == "dane" and secure.usable_tlsa == (record,)
    insecure = Endpoint("mx.fabrikam.test", "192.0.2.1", 25, secure=False)
    assert (await security.decide(_internet(), insecure, "fabrikam.test")).policy == "opportunistic"
    mandatory = await security.decide(_internet(SmtpDaneMode="Mandatory"), insecure, "fabrikam.test")
    assert mandatory.refusal is not None and "SmtpDaneMode Mandatory" in mandatory.refusal.text


def test_internet_connectors_default_to_opportunistic_dane_and_mta_sts() -> None:
    c = _internet()
    assert (c.smtp_dane_mode, c.mta_sts_mode) == ("Opportunistic", "Opportunistic")
    custom = new_connector({"Name": "Out", "AddressSpaces": "*"}, "EXCH01")
    assert (custom.smtp_dane_mode, custom.mta_sts_mode) == ("None", "None")
    with pytest.raises(ValidationError, match="SmtpDaneMode"):
        new_connector({"Name": "Relay", "DNSRoutingEnabled": "false", "SmartHosts": "relay.test",
                       "AddressSpaces": "*", "SmtpDaneMode": "Mandatory"}, "EXCH01")
    with pytest.raises(ValidationError, match="SmtpDaneMode"):
        _internet(SmtpDaneMode="Required")
    relay = update_connector(c, {"DNSRoutingEnabled": "false", "SmartHosts": "relay.test"})
    assert (relay.smtp_dane_mode, relay.mta_sts_mode) == ("None", "None")


# --- TLS reporting: result types, counts, the report --------------------------------------------


def test_failures_get_rfc_8460_result_types() -> None:
    assert result_type("TLS is required but mx (1.2.3.4:25) did not offer STARTTLS") == "starttls-not-supported"
    assert result_type("DANE: the TLSA lookup for _25._tcp.mx failed (SERVFAIL)") == "dnssec-invalid"
    assert result_type("SmtpDaneMode Mandatory: mx is not DNSSEC-secure") == "dane-required"
    assert result_type("DANE authentication failed: no TLSA record matches") == "validation-failure"
    assert result_type("MTA-STS: certificate names a.test do not match mx.test") == "certificate-host-mismatch"
    assert result_type("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired") \
        == "certificate-expired"
    assert result_type("certificate verify failed: unable to get local issuer certificate") \
        == "certificate-not-trusted"


async def test_counts_add_up_per_day_and_policy_and_the_report_has_rfc_8460_fields() -> None:
    clock = VirtualClock(1_796_400_000.0)  # 2026-12-04
    counter = TlsCounter(clock)
    sts = PolicyKey("fabrikam.test", "sts", ("version: STSv1", "mode: enforce"), ("mx.fabrikam.test",))
    counter.success(sts)
    counter.failure(sts, "validation-failure", "mx0.fabrikam.test", "192.0.2.1", "not in the policy")
    reports = MemoryTlsReports()
    await reports.add(counter.drain())
    counter.success(sts)  # another server, or the next flush
    counter.failure(sts, "validation-failure", "mx0.fabrikam.test", "192.0.2.1")
    await reports.add(counter.drain())
    [day] = await reports.counts()
    assert (day.day, day.domain, day.successful, day.failed) == ("2026-12-04", "fabrikam.test", 2, 2)
    report = report_json(day, "Contoso", "postmaster@contoso.test", "r1")
    assert report["date-range"] == {"start-datetime": "2026-12-04T00:00:00Z", "end-datetime": "2026-12-04T23:59:59Z"}
    [policy] = report["policies"]
    assert policy["policy"] == {"policy-type": "sts", "policy-domain": "fabrikam.test",
                                "policy-string": ["version: STSv1", "mode: enforce"], "mx-host": ["mx.fabrikam.test"]}
    assert policy["summary"] == {"total-successful-session-count": 2, "total-failure-session-count": 2}
    assert policy["failure-details"] == [{"result-type": "validation-failure", "failed-session-count": 2,
                                          "receiving-mx-hostname": "mx0.fabrikam.test", "receiving-ip": "192.0.2.1",
                                          "additional-information": "not in the policy"}]


def test_rua_comes_from_the_one_tlsrpt_record() -> None:
    assert parse_rua(["v=TLSRPTv1; rua=mailto:tls@contoso.test,https://r.contoso.test/x"]) == [
        "mailto:tls@contoso.test", "https://r.contoso.test/x"]
    assert parse_rua(["v=TLSRPTv1;rua=mailto:a@b.test", "v=TLSRPTv1;rua=mailto:c@d.test"]) == []
    assert parse_rua(["v=TLSRPTv1; rua=ftp://x.test"]) == [] and parse_rua(["v=spf1 -all"]) == []
