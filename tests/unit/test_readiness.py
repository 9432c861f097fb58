"""The pure parts of the readiness checks: DMARC tags, organisational domains, alignment,
the MTA-STS and TLS-RPT records, which DKIM config signs a domain, and the overall result."""

from __future__ import annotations

import pytest

from mailhop.model.dkim import DkimConfig
from mailhop.readiness import FAIL, PASS, WARN, Row, overall
from mailhop.readiness.checks import mta_sts_problem, signing, signing_config, tls_rpt_problem
from mailhop.readiness.dmarc import DmarcSyntaxError, aligned, is_dmarc, org_domain, parse
from mailhop.readiness.spf import is_spf, suggested


def test_dmarc_tags_and_defaults() -> None:
    r = parse("v=DMARC1; p=reject; rua=mailto:a@contoso.test, mailto:b@contoso.test")
    assert (r.p, r.sp, r.adkim, r.aspf, r.pct) == ("reject", None, "r", "r", 100)
    assert r.rua == ("mailto:a@contoso.test", "mailto:b@contoso.test")
    r = parse("v=DMARC1;p=Quarantine;sp=none;adkim=s;aspf=S;pct=25;")
    assert (r.p, r.sp, r.adkim, r.aspf, r.pct) == ("quarantine", "none", "s", "s", 25)
    assert r.policy(subdomain=True) == "none" and r.policy(subdomain=False) == "quarantine"
    assert parse("v=DMARC1; p=reject").policy(subdomain=True) == "reject"


@pytest.mark.parametrize(("text", "message"), [
    ("v=DMARC1", "no p= tag"),
    ("v=DMARC1; p=block", "p= must be none, quarantine or reject"),
    ("p=reject; v=DMARC1", "must start with v=DMARC1"),
    ("v=DMARC1; p=none; adkim=x", "adkim= must be r or s"),
    ("v=DMARC1; p=none; pct=150", "pct= must be a number from 0 to 100"),
    ("v=DMARC1; p=none; pct=all", "pct= must be a number"),
    ("v=DMARC1; p=none; sp=maybe", "sp= must be"),
    ("v=DMARC1; p=none; junk", "not a tag=value pair"),
])
def test_dmarc_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(DmarcSyntaxError, match=message):
        parse(text)


def test_which_txt_records_are_dmarc_and_spf() -> None:
    assert is_dmarc("v=DMARC1; p=none") and is_dmarc("v = DMARC1 ;p=none") and not is_dmarc("v=DMARC10")
    assert not is_dmarc("google-site-verification=abc")
    assert is_spf("v=spf1 -all") and is_spf("v=spf1") and is_spf("V=SPF1 ip4:1.2.3.4")
    assert not is_spf("v=spf10 -all") and not is_spf("spf2.0/pra")
    assert suggested(["127.0.0.5", "2001:db8::5"]) == "v=spf1 ip4:127.0.0.5 ip6:2001:db8::5 -all"


@pytest.mark.parametrize(("domain", "org"), [
    ("mail.contoso.test", "contoso.test"),   # an unknown TLD: the last two labels
    ("contoso.test", "contoso.test"),
    ("a.b.contoso.com", "contoso.com"),
    ("mail.contoso.co.uk", "contoso.co.uk"),
    ("co.uk", "co.uk"),                        # a public suffix itself
    ("Mail.Contoso.Test.", "contoso.test"),
])
def test_org_domain(domain: str, org: str) -> None:
    assert org_domain(domain) == org


def test_alignment() -> None:
    assert aligned("contoso.test", "news.contoso.test", strict=False)
    assert not aligned("contoso.test", "news.contoso.test", strict=True)
    assert aligned("contoso.test", "CONTOSO.test", strict=True)
    assert not aligned("fabrikam.test", "contoso.test", strict=False)
    assert not aligned("contoso.co.uk", "fabrikam.co.uk", strict=False)  # co.uk is a public suffix


@pytest.mark.parametrize(("text", "problem"), [
    ("v=STSv1; id=20260101T000000", None),
    ("v=STSv1;id=abc", None),
    ("v=STSv1; id=not-valid", "id= must be 1 to 32 letters and digits"),
    ("v=STSv1;", "no id= tag"),
    ("v=STSv1id=1", "must start with v=STSv1;"),
])
def test_mta_sts_record(text: str, problem: str | None) -> None:
    found = mta_sts_problem(text)
    assert found == problem if problem is None else (found is not None and problem in found)


@pytest.mark.parametrize(("text", "problem"), [
    ("v=TLSRPTv1; rua=mailto:tlsrpt@contoso.test", None),
    ("v=TLSRPTv1; rua=mailto:a@contoso.test,https://reports.contoso.test/tls", None),
    ("v=TLSRPTv1;", "no rua= tag"),
    ("v=TLSRPTv1; rua=tlsrpt@contoso.test", "mailto: or https:"),
])
def test_tls_rpt_record(text: str, problem: str | None) -> None:
    found = tls_rpt_problem(text)
    assert found == problem if problem is None else (found is not None and problem in found)


def test_the_config_that_signs_a_domain() -> None:
    parent = DkimConfig("contoso.test", sub_domains=True)
    own_off = DkimConfig("news.contoso.test", enabled=False)
    alone = DkimConfig("fabrikam.test")
    configs = [parent, own_off, alone]
    assert signing_config(configs, "news.contoso.test") == (parent, own_off)  # disabled: the parent signs
    assert signing_config(configs, "a.b.contoso.test") == (parent, parent)
    assert signing_config(configs, "sub.fabrikam.test") == (None, None)  # fabrikam.test has no SubDomains
    assert signing(configs, "fabrikam.test").domain == "fabrikam.test"
    unsigned = signing([own_off], "news.contoso.test")
    assert unsigned.domain is None and "disabled" in unsigned.issue
    assert signing([], "x.test").fix == "sign mail from x.test: mailhop dkim new x.test"


def test_rows_and_overall() -> None:
    passed = Row("SPF", PASS, "ok", "ignored")
    assert passed.to_json() == {"Check": "SPF", "Result": "Pass", "Evidence": "ok", "Fix": ""}
    assert Row("ReverseDNS", WARN, "e", "f", "127.0.0.5").to_json()["Address"] == "127.0.0.5"
    assert overall([passed]) == PASS
    assert overall([passed, Row("MTA-STS", WARN, "e", "f")]) == WARN
    assert overall([Row("DKIM", FAIL, "e", "f"), Row("MTA-STS", WARN, "e", "f")]) == FAIL
