"""``mailhop domain check`` against a real DNS server (dnsmasq on loopback), no DNS mocks.

The zone holds domains that pass and domains that fail each check; DKIM signing configs
are made in a real SQLite store and their records published as ``mailhop dkim`` prints
them.  SPF is evaluated by pyspf, whose lookups must reach this dnsmasq (the log shows
them).  Then the command line: the table, ``--json`` and the exit status.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mailhop.cli.main import cli
from mailhop.clock import SYSTEM_CLOCK
from mailhop.config import Settings, from_mapping
from mailhop.errors import ValidationError
from mailhop.model.connector import new_connector
from mailhop.services import Services
from mailhop.services.local import local_services
from tests.support.dns import DnsServer

GOOD, NOFWD, NOPTR, OTHER, UNLISTED = "127.0.0.5", "127.0.0.6", "127.0.0.7", "127.0.0.8", "127.0.0.9"
FQDN = "mail.contoso.test"
INCLUDES = [f"i{n}.many.test" for n in range(11)]

TXT: dict[str, list[str]] = {
    "contoso.test": [f"v=spf1 ip4:{GOOD} ip4:{NOFWD} ip4:{NOPTR} ip4:{OTHER} -all"],
    "_dmarc.contoso.test": ["v=DMARC1; p=reject; rua=mailto:dmarc@contoso.test"],
    "_mta-sts.contoso.test": ["v=STSv1; id=20260101T000000"],
    "_smtp._tls.contoso.test": ["v=TLSRPTv1; rua=mailto:tlsrpt@contoso.test"],
    # a sub-domain: its own SPF, DMARC from the organisational domain, signed by contoso.test's config
    "news.contoso.test": ["v=spf1 include:contoso.test -all"],
    # a sub-domain with its own strict DMARC record: d=contoso.test does not align
    "strict.contoso.test": ["v=spf1 include:contoso.test -all"],
    "_dmarc.strict.contoso.test": ["v=DMARC1; p=reject; adkim=s"],
    "many.test": ["v=spf1 " + " ".join(f"include:{i}" for i in INCLUDES) + " -all"],
    **{i: ["v=spf1 -all"] for i in INCLUDES},
    "other.test": [f"v=spf1 ip4:{UNLISTED} -all"],
    "soft.test": [f"v=spf1 ip4:{UNLISTED} ~all"],
    "two.test": [f"v=spf1 ip4:{GOOD} -all", "v=spf1 -all"],
    "broken.test": ["v=spf1 ip4:127.0.0.999 -all"],
    # fabrikam.test: SPF passes, p=reject, but no DKIM signing config
    "fabrikam.test": [f"v=spf1 ip4:{GOOD} -all"],
    "_dmarc.fabrikam.test": ["v=DMARC1; p=reject"],
    "_mta-sts.fabrikam.test": ["v=STSv1; id=not-valid"],
    "_smtp._tls.fabrikam.test": ["v=TLSRPTv1; rua=tlsrpt@fabrikam.test"],
    # northwind.test: its own config, aligned, p=none
    "northwind.test": [f"v=spf1 ip4:{GOOD} -all"],
    "_dmarc.northwind.test": ["v=DMARC1; p=none; rua=mailto:d@northwind.test"],
    # tailspin.test: a disabled config; unpublished.test: a config whose records are not in DNS
    "tailspin.test": [f"v=spf1 ip4:{GOOD} -all"],
    "_dmarc.tailspin.test": ["v=DMARC1; p=quarantine; pct=50"],
    "unpublished.test": [f"v=spf1 ip4:{GOOD} -all"],
}
A = {FQDN: GOOD, "other.contoso.test": OTHER}           # each also gives its address a PTR
PTR = {NOFWD: "nofwd.contoso.test"}                       # no A record back to the address
RECORDS: dict[str, Any] = {"txt": TXT, "a": A, "ptr": PTR, "servfail": ["slow.test"]}


def settings_for(tmp_path: Path, zone: DnsServer, **server: Any) -> Settings:
    return from_mapping({
        "server": {"name": "EXCH01", "fqdn": FQDN, "data_dir": str(tmp_path / "data"), **server},
        "dns": {"nameservers": [zone.nameserver], "timeout": "1s", "lifetime": "2s"},
    })


@pytest.fixture
def zone() -> Iterator[DnsServer]:
    server = DnsServer(**RECORDS).start()
    yield server
    server.stop()


async def publish_configs(services: Services, zone: DnsServer) -> None:
    txt = dict(TXT)
    for domain, subs in (("contoso.test", "true"), ("northwind.test", "false")):
        made = await services.dkim.new(domain, key_size=1024, sub_domains=subs)
        txt.update({r["Name"]: [r["Value"]] for r in made["Records"]})
    await services.dkim.new("tailspin.test", key_size=1024, enabled="false")
    await services.dkim.new("unpublished.test", key_size=1024)
    zone.restart(**{**RECORDS, "txt": txt})


@pytest.fixture
async def services(tmp_path: Path, zone: DnsServer) -> AsyncIterator[Services]:
    async with local_services(settings_for(tmp_path, zone), SYSTEM_CLOCK) as made:
        await publish_configs(made, zone)
        yield made


def rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The rows by check (ReverseDNS rows by ``ReverseDNS <address>``), each well formed."""
    out: dict[str, dict[str, Any]] = {}
    for row in report["Checks"]:
        assert row["Result"] in {"Pass", "Warn", "Fail"} and row["Evidence"], row
        assert (row["Fix"] == "") == (row["Result"] == "Pass"), row
        assert ("Address" in row) == (row["Check"] == "ReverseDNS" and bool(report["SendingIps"])), row
        key = f"ReverseDNS {row['Address']}" if "Address" in row else row["Check"]
        assert key not in out
        out[key] = row
    expected = {"Fail"} & {r["Result"] for r in report["Checks"]} or {"Warn"} & {
        r["Result"] for r in report["Checks"]} or {"Pass"}
    assert {report["Result"]} == expected
    return out


def verdicts(report: dict[str, Any]) -> dict[str, str]:
    return {k: v["Result"] for k, v in rows(report).items()}


async def test_a_domain_that_is_ready_passes_every_check(services: Services, zone: DnsServer) -> None:
    report = await services.readiness.check("Contoso.Test.", [GOOD])
    assert report["Domain"] == "contoso.test"
    assert report["SendingIps"] == [GOOD] and report["SendingIpsFrom"] == "--ip"
    assert verdicts(report) == {"SPF": "Pass", "DKIM": "Pass", "DMARC": "Pass", f"ReverseDNS {GOOD}": "Pass",
                                "MTA-STS": "Pass", "TLS-RPT": "Pass"}
    assert report["Result"] == "Pass"
    checks = rows(report)
    assert f"{GOOD}: pass" in checks["SPF"]["Evidence"]
    assert "selector1._domainkey.contoso.test: published" in checks["DKIM"]["Evidence"]
    assert '"v=DMARC1; p=reject; rua=mailto:dmarc@contoso.test"' in checks["DMARC"]["Evidence"]
    assert FQDN in checks[f"ReverseDNS {GOOD}"]["Evidence"]
    assert ("TXT", "contoso.test") in zone.queries()  # pyspf asked our dnsmasq


async def test_reverse_dns_rows(services: Services) -> None:
    report = await services.readiness.check("contoso.test", [GOOD, NOFWD, NOPTR, OTHER])
    checks = rows(report)
    assert verdicts(report) == {"SPF": "Pass", "DKIM": "Pass", "DMARC": "Pass", "MTA-STS": "Pass",
                                "TLS-RPT": "Pass", f"ReverseDNS {GOOD}": "Pass", f"ReverseDNS {NOFWD}": "Fail",
                                f"ReverseDNS {NOPTR}": "Fail", f"ReverseDNS {OTHER}": "Warn"}
    assert "not forward-confirmed" in checks[f"ReverseDNS {NOFWD}"]["Evidence"]
    assert "nofwd.contoso.test" in checks[f"ReverseDNS {NOFWD}"]["Fix"]
    assert "no PTR record" in checks[f"ReverseDNS {NOPTR}"]["Evidence"]
    assert "other.contoso.test" in checks[f"ReverseDNS {OTHER}"]["Evidence"]
    assert [r["Address"] for r in report["Checks"] if r["Check"] == "ReverseDNS"] == [GOOD, NOFWD, NOPTR, OTHER]
    assert report["Result"] == "Fail"


async def test_a_connector_fqdn_counts_as_an_ehlo_name(services: Services) -> None:
    await services.readiness.store.connectors.create(new_connector(
        {"Name": "Other", "AddressSpaces": "fabrikam.test", "Fqdn": "other.contoso.test"}, "EXCH01"))
    checks = rows(await services.readiness.check("contoso.test", [OTHER]))
    assert checks[f"ReverseDNS {OTHER}"]["Result"] == "Pass"


@pytest.mark.parametrize(("domain", "result", "evidence"), [
    ("nospf.test", "Fail", "no SPF record"),
    ("many.test", "Fail", "more than 10 DNS lookups"),
    ("other.test", "Fail", f"not authorised: {GOOD}"),
    ("soft.test", "Warn", f"only softfail for {GOOD}"),
    ("two.test", "Fail", "2 SPF records"),
    ("broken.test", "Fail", "permerror"),
    ("news.contoso.test", "Pass", f"{GOOD}: pass"),
])
async def test_spf(services: Services, domain: str, result: str, evidence: str) -> None:
    row = rows(await services.readiness.check(domain, [GOOD]))["SPF"]
    assert row["Result"] == result, row
    assert evidence in row["Evidence"], row
    if domain == "other.test":
        assert f"ip4:{GOOD}" in row["Fix"]


async def test_spf_lookups_go_to_the_configured_server(services: Services, zone: DnsServer) -> None:
    await services.readiness.check("many.test", [GOOD])
    asked = {name for kind, name in zone.queries() if kind == "TXT"}
    assert set(INCLUDES[:10]) <= asked


@pytest.mark.parametrize(("domain", "dkim", "dmarc", "evidence"), [
    ("nodmarc.test", "Fail", "Fail", "no DMARC record"),
    ("fabrikam.test", "Fail", "Fail", "p=reject and mail from fabrikam.test is not DKIM-signed with an aligned domain"),
    ("strict.contoso.test", "Pass", "Fail", "d=contoso.test does not align with strict.contoso.test (strict"),
    ("news.contoso.test", "Pass", "Pass", "of the organisational domain contoso.test"),
    ("northwind.test", "Pass", "Warn", "monitoring only"),
    ("tailspin.test", "Fail", "Fail", "tailspin.test is disabled"),
])
async def test_dkim_and_dmarc(services: Services, domain: str, dkim: str, dmarc: str, evidence: str) -> None:
    checks = rows(await services.readiness.check(domain, [GOOD]))
    assert checks["DKIM"]["Result"] == dkim, checks["DKIM"]
    assert checks["DMARC"]["Result"] == dmarc, checks["DMARC"]
    assert evidence in checks["DMARC"]["Evidence"], checks["DMARC"]
    if domain == "nodmarc.test":
        assert checks["DMARC"]["Fix"] == 'publish TXT _dmarc.nodmarc.test "v=DMARC1; p=none; rua=mailto:dmarc@nodmarc.test"'
        assert checks["DKIM"]["Fix"] == "no DKIM signing config: mailhop dkim new nodmarc.test"
    if domain == "news.contoso.test":
        assert "d=contoso.test (the config of contoso.test, SubDomains)" in checks["DKIM"]["Evidence"]
    if domain == "tailspin.test":
        assert checks["DMARC"]["Fix"] == "enable DKIM signing: mailhop dkim set tailspin.test --enabled true"
        assert "applied to 50% of failing mail" in checks["DMARC"]["Evidence"]
    if domain == "northwind.test":
        assert "p=quarantine" in checks["DMARC"]["Fix"]


async def test_dkim_records_not_published_name_the_record_to_publish(services: Services) -> None:
    row = rows(await services.readiness.check("unpublished.test", [GOOD]))["DKIM"]
    assert row["Result"] == "Fail"
    config = await services.dkim.get("unpublished.test")
    for record in config["Records"]:
        if record["Role"] == "Active":
            assert f'publish TXT {record["Name"]} "{record["Value"]}"' in row["Fix"]
    assert "PRIVATE" not in json.dumps(row)


async def test_malformed_and_absent_mta_sts_and_tls_rpt_warn(services: Services) -> None:
    fabrikam = rows(await services.readiness.check("fabrikam.test", [GOOD]))
    assert fabrikam["MTA-STS"]["Result"] == "Warn" and "malformed" in fabrikam["MTA-STS"]["Evidence"]
    assert fabrikam["TLS-RPT"]["Result"] == "Warn" and "malformed" in fabrikam["TLS-RPT"]["Evidence"]
    northwind = rows(await services.readiness.check("northwind.test", [GOOD]))
    assert northwind["MTA-STS"]["Result"] == "Warn" and northwind["MTA-STS"]["Fix"].startswith("optional:")
    assert northwind["TLS-RPT"]["Result"] == "Warn" and northwind["TLS-RPT"]["Fix"].startswith("optional:")


async def test_a_dns_timeout_is_a_warning(services: Services) -> None:
    report = await services.readiness.check("slow.test", [GOOD])
    checks = rows(report)
    for name in ("SPF", "DMARC", "MTA-STS", "TLS-RPT"):
        assert checks[name]["Result"] == "Warn", checks[name]
        assert checks[name]["Evidence"].startswith("could not check:"), checks[name]


async def test_bad_domain_or_address_is_a_validation_error(services: Services) -> None:
    with pytest.raises(ValidationError, match="not a valid domain name"):
        await services.readiness.check("not a domain", [GOOD])
    with pytest.raises(ValidationError) as info:
        await services.readiness.check("contoso.test", ["127.0.0.300"])
    assert str(info.value) == "'127.0.0.300' is not an IP address"


# --- where the sending addresses come from -----------------------------------------------------

async def test_sending_addresses_from_outbound_ips(tmp_path: Path, zone: DnsServer) -> None:
    async with local_services(settings_for(tmp_path, zone, outbound_ips=[GOOD]), SYSTEM_CLOCK) as s:
        report = await s.readiness.check("contoso.test")
    assert report["SendingIps"] == [GOOD] and report["SendingIpsFrom"] == "outbound_ips"
    assert rows(report)["SPF"]["Result"] == "Pass"


async def test_sending_addresses_from_smart_hosts_or_none(tmp_path: Path, zone: DnsServer) -> None:
    async with local_services(settings_for(tmp_path, zone), SYSTEM_CLOCK) as s:
        none = await s.readiness.check("contoso.test")
        assert none["SendingIps"] == [] and none["SendingIpsFrom"] == "none"
        checks = rows(none)
        assert checks["SPF"]["Result"] == "Warn" and "give --ip" in checks["SPF"]["Fix"]
        assert checks["ReverseDNS"]["Result"] == "Warn" and "give --ip" in checks["ReverseDNS"]["Fix"]
        await s.readiness.store.connectors.create(new_connector(
            {"Name": "Relay", "AddressSpaces": "*", "DNSRoutingEnabled": "false",
             "SmartHosts": f"[{GOOD}],{FQDN}"}, "EXCH01"))
        relayed = await s.readiness.check("contoso.test")
        assert relayed["SendingIps"] == [GOOD] and relayed["SendingIpsFrom"] == "smart hosts"
        await s.readiness.store.connectors.create(new_connector({"Name": "Direct", "AddressSpaces": "*"}, "EXCH01"))
        assert (await s.readiness.check("contoso.test"))["SendingIpsFrom"] == "none"


# --- the command line ---------------------------------------------------------------------------

def test_cli_table_json_and_exit_status(tmp_path: Path, zone: DnsServer) -> None:
    config = tmp_path / "mailhop.toml"
    config.write_text(f'[server]\nname = "EXCH01"\nfqdn = "{FQDN}"\ndata_dir = "{tmp_path / "data"}"\n'
                      f'[dns]\nnameservers = ["{zone.nameserver}"]\ntimeout = "1s"\nlifetime = "2s"\n')
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, ["--config", str(config), *args])

    made = run("dkim", "new", "contoso.test", "--key-size", "1024", "--json")
    assert made.exit_code == 0, made.output
    zone.restart(**{**RECORDS, "txt": {**TXT, **{r["Name"]: [r["Value"]]
                                                for r in json.loads(made.output)["Records"]}}})

    ready = run("domain", "check", "contoso.test", "--ip", GOOD, "--json")
    assert ready.exit_code == 0, ready.output
    report = json.loads(ready.output)
    assert set(report) == {"Domain", "SendingIps", "SendingIpsFrom", "Result", "Checks"}
    assert report["Result"] == "Pass" and report["SendingIpsFrom"] == "--ip"
    assert [r["Check"] for r in report["Checks"]] == ["SPF", "DKIM", "DMARC", "ReverseDNS", "MTA-STS", "TLS-RPT"]

    failing = run("domain", "check", "fabrikam.test", "--ip", GOOD, "--ip", NOPTR)
    assert failing.exit_code == 1, failing.output
    lines = failing.output.splitlines()
    assert "Result         : Fail" in lines
    header = next(i for i, line in enumerate(lines) if line.startswith("Check "))
    assert lines[header].split() == ["Check", "Address", "Result", "Evidence", "Fix"]
    table = [line.split()[:3] for line in lines[header + 2:]]
    assert table[0][:2] == ["SPF", "Fail"] and table[1][:2] == ["DKIM", "Fail"]  # NOPTR is not in SPF
    assert ["ReverseDNS", GOOD, "Pass"] in table and ["ReverseDNS", NOPTR, "Fail"] in table

    warned = run("domain", "check", "contoso.test", "--ip", OTHER, "--json")  # PTR not the EHLO name
    assert warned.exit_code == 0, warned.output
    assert json.loads(warned.output)["Result"] == "Warn"

    bad = run("domain", "check", "contoso.test", "--ip", "nope")
    assert bad.exit_code == 1 and isinstance(bad.exception, ValidationError)
    assert str(bad.exception) == "'nope' is not an IP address"
