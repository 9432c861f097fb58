"""MTA-STS for direct delivery: policies over real HTTPS, real DNS (dnsmasq), real STARTTLS receivers.

The policy server is Python's http.server with TLS on 127.0.0.41:443 and a trustme certificate
for every ``mta-sts.<domain>``; mailhop trusts that CA through ``[tls] ca_file``.  Each
destination's MX hosts are aiosmtpd receivers on their own loopback addresses, one shared
port (the connector's).  ``[tls] mta_sts_recheck_interval = 0s`` makes every new connection
ask the TXT record again, so a changed id is seen at once, and ``[delivery]
connection_cache_time = 0s`` makes every message a new connection.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mailhop.cli.main import cli
from tests.support.client import submit
from tests.support.dns import DnsServer, shared_tcp_port
from tests.support.https import HttpsServer
from tests.support.mailhop import to_toml
from tests.support.sink import Sink
from tests.support.tlsfix import Pki, Receiver
from tests.support.wait import async_wait_for, failed_attempt

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the policy server listens on port 443")

POLICY_HOST = "127.0.0.41"
COLLECTOR = "collector.reports.test"  # the TLS-RPT https: collector, on the policy server
REPORTS_MX = "127.0.0.72"             # the TLS-RPT mailbox's MX (a plain sink)
# MX host -> address; a host's certificate names it, from the trusted CA unless listed below.
MX = {
    "mx0.skip.test": "127.0.0.61", "mx1.skip.test": "127.0.0.62", "mail.wildcard.test": "127.0.0.63",
    "mx.badcert.test": "127.0.0.64", "mx.untrusted.test": "127.0.0.71", "mx.testing.test": "127.0.0.65",
    "mx.none.test": "127.0.0.66", "mx.idchange.test": "127.0.0.67", "mx0.down.test": "127.0.0.68",
    "mx1.down.test": "127.0.0.69", "mx.redirect.test": "127.0.0.70",
}
ROGUE = {"mx.untrusted.test", "mx.testing.test", "mx.none.test", "mx.redirect.test"}
WRONG_NAME = {"mx.badcert.test": "mx.other.test"}
DOMAINS = {"skip.test": ["mx0.skip.test", "mx1.skip.test"], "wildcard.test": ["mail.wildcard.test"],
           "badcert.test": ["mx.badcert.test"], "untrusted.test": ["mx.untrusted.test"],
           "testing.test": ["mx.testing.test"], "none.test": ["mx.none.test"],
           "idchange.test": ["mx.idchange.test"], "down.test": ["mx0.down.test", "mx1.down.test"],
           "redirect.test": ["mx.redirect.test"], "huge.test": ["mx.none.test"]}


def policy(mode: str, *mx: str, max_age: int = 86400) -> str:
    return "version: STSv1\r\nmode: " + mode + "\r\n" + "".join(f"mx: {m}\r\n" for m in mx) + f"max_age: {max_age}\r\n"


class World:
    def __init__(self, root: Path) -> None:
        self.pki = Pki(root / "pki")
        self.port = shared_tcp_port([*MX.values(), REPORTS_MX])
        self.mailbox = Sink(REPORTS_MX, self.port).start()
        self.receivers: dict[str, Receiver] = {}
        for host, ip in MX.items():
            leaf = self.pki.leaf(host, WRONG_NAME.get(host, host), ca=self.pki.rogue if host in ROGUE else None)
            self.receivers[host] = Receiver(starttls=self.pki.server_context(leaf), host=ip, port=self.port).start()
        web = self.pki.leaf("mta-sts", *(f"mta-sts.{d}" for d in [*DOMAINS, "elsewhere.test"]), COLLECTOR)
        self.https = HttpsServer(POLICY_HOST, web.cert_file, web.key_file).start()
        self.https.policy("skip.test", policy("enforce", "mx1.skip.test"))
        self.https.policy("wildcard.test", policy("enforce", "*.wildcard.test"))
        self.https.policy("badcert.test", policy("enforce", "mx.badcert.test"))
        self.https.policy("untrusted.test", policy("enforce", "mx.untrusted.test"))
        self.https.policy("testing.test", policy("testing", "mx.testing.test"))
        self.https.policy("none.test", policy("none"))
        self.https.policy("idchange.test", policy("enforce", "mx.idchange.test"))
        self.https.policy("down.test", policy("enforce", "mx1.down.test"))
        self.https.policy("redirect.test", "", status=301,
                          Location="https://mta-sts.elsewhere.test/.well-known/mta-sts.txt")
        self.https.policy("elsewhere.test", policy("enforce", "mx.nowhere.test"))
        # Over the 64 KB limit: not a policy, so its enforce (which admits no MX of huge.test) is ignored.
        self.https.policy("huge.test", policy("enforce", "mx.nowhere.test") + "x-padding: " + "x" * 70_000 + "\r\n")
        self.https.pages[(COLLECTOR, "/v1/tlsrpt")] = (200, {"Content-Type": "text/plain"}, b"thanks\n")
        self.ids = {d: "1" for d in DOMAINS}
        self.dns = DnsServer(**self.records()).start()

    def records(self) -> dict[str, Any]:
        mx = {d: [(10 * (i + 1), h) for i, h in enumerate(hosts)] for d, hosts in DOMAINS.items()}
        mx["reports.test"] = [(10, "mx.reports.test")]
        a = {**MX, **{f"mta-sts.{d}": POLICY_HOST for d in [*DOMAINS, "elsewhere.test"]},
             COLLECTOR: POLICY_HOST, "mx.reports.test": REPORTS_MX}
        txt = {f"_mta-sts.{d}": [f"v=STSv1; id={i}"] for d, i in self.ids.items()}
        txt["_smtp._tls.skip.test"] = ["v=TLSRPTv1; rua=mailto:tlsrpt@reports.test"]
        txt["_smtp._tls.testing.test"] = [f"v=TLSRPTv1; rua=https://{COLLECTOR}/v1/tlsrpt"]
        return {"mx": mx, "a": a, "txt": txt}

    def new_id(self, domain: str) -> None:
        self.ids[domain] = str(int(self.ids[domain]) + 1)
        self.dns.restart(**self.records())

    def got(self, host: str, to: str) -> bool:
        return any(to in a.rcpt_tos for a in self.receivers[host].arrivals)

    def stop(self) -> None:
        for r in self.receivers.values():
            r.stop()
        self.https.stop()
        self.mailbox.stop()
        self.dns.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(tmp_path_factory.mktemp("sts"))
    yield w
    w.stop()


async def internet(transport_factory: Any, world: World, **sections: Any) -> Any:
    t = await transport_factory(dns={"nameservers": [world.dns.nameserver]}, **sections,
                                tls={"ca_file": str(world.pki.ca_file), "mta_sts_recheck_interval": "0s",
                                     "mta_sts_fetch_timeout": "5s"},
                                # A new connection per message: the TLS policy is decided per connection.
                                delivery={"connection_cache_time": "0s"})
    await t.connector(Name="To Internet", Usage="Internet", AddressSpaces="*", Port=str(world.port))
    return t


async def send(t: Any, domain: str) -> tuple[int, str]:
    to = f"{uuid.uuid4().hex[:10]}@{domain}"
    return (await submit(t.port, "alice@contoso.test", [to])).queue_id, to


async def sent_event(t: Any, qid: int) -> dict[str, Any]:
    [event] = await async_wait_for(
        lambda: [e for e in t.tracking() if e["EventId"] == "SEND" and e.get("InternalMessageId") == qid],
        what="the SEND event")
    return event


async def deferred(t: Any, world: World, qid: int, to: str) -> str:
    error = await failed_attempt(t.store, qid, f"a failed attempt for {to}")
    assert error.startswith("451 4.7.5") and "MTA-STS" in error, error
    assert not any(world.got(h, to) for h in DOMAINS[to.split("@")[1]])
    return error


async def test_enforce_skips_an_mx_outside_the_policy(transport_factory: Any, world: World) -> None:
    t = await internet(transport_factory, world)
    qid, to = await send(t, "skip.test")
    event = await sent_event(t, qid)
    assert event["TlsPolicy"] == "mta-sts" and event["RemoteHost"] == "mx1.skip.test"
    assert world.got("mx1.skip.test", to) and not world.got("mx0.skip.test", to)
    [cached] = [p for p in await t.store.mta_sts.list() if p.domain == "skip.test"]
    assert cached.policy_id == "1" and "mode: enforce" in cached.text


async def test_enforce_matches_a_wildcard_mx_pattern(transport_factory: Any, world: World) -> None:
    t = await internet(transport_factory, world)
    qid, to = await send(t, "wildcard.test")
    assert (await sent_event(t, qid))["TlsPolicy"] == "mta-sts"
    assert world.got("mail.wildcard.test", to)


async def test_enforce_refuses_a_certificate_for_another_name(transport_factory: Any, world: World) -> None:
    t = await internet(transport_factory, world)
    error = await deferred(t, world, *await send(t, "badcert.test"))
    assert "do not match mx.badcert.test" in error


async def test_enforce_refuses_a_certificate_nobody_trusts(transport_factory: Any, world: World) -> None:
    t = await internet(transport_factory, world)
    error = await deferred(t, world, *await send(t, "untrusted.test"))
    assert "certificate" in error.lower()


async def test_testing_mode_delivers_as_without_a_policy(transport_factory: Any, world: World) -> None:
    t = await internet(transport_factory, world)
    qid, to = await send(t, "testing.test")
    assert (await sent_event(t, qid))["TlsPolicy"] == "opportunistic"
    assert world.got("mx.testing.test", to)


async def test_mode_none_delivers_as_without_a_policy(transport_factory: Any, world: World) -> None:
    t = await internet(transport_factory, world)
    qid, to = await send(t, "none.test")
    assert (await sent_event(t, qid))["TlsPolicy"] == "opportunistic"
    assert world.got("mx.none.test", to)


async def test_a_new_id_refetches_and_the_same_id_does_not(transport_factory: Any, world: World) -> None:
    t = await internet(transport_factory, world)
    await sent_event(t, (await send(t, "idchange.test"))[0])
    await sent_event(t, (await send(t, "idchange.test"))[0])
    assert world.https.fetches("idchange.test") == 1
    world.https.policy("idchange.test", policy("enforce", "mx.idchange.test", max_age=604800))
    world.new_id("idchange.test")
    await sent_event(t, (await send(t, "idchange.test"))[0])
    assert world.https.fetches("idchange.test") == 2
    cached = await t.store.mta_sts.get("idchange.test")
    assert cached is not None and cached.policy_id == world.ids["idchange.test"] and "604800" in cached.text


async def test_the_cached_policy_holds_while_the_policy_host_is_down(transport_factory: Any,
                                                                    world: World) -> None:
    t = await internet(transport_factory, world)
    qid, to = await send(t, "down.test")
    assert (await sent_event(t, qid))["RemoteHost"] == "mx1.down.test"
    world.https.down.add("mta-sts.down.test")
    world.new_id("down.test")
    qid, to = await send(t, "down.test")
    event = await sent_event(t, qid)
    # The refetch failed (the id changed, the host did not answer): the cached enforce
    # policy still skips mx0, which is not in it.
    assert event["TlsPolicy"] == "mta-sts" and event["RemoteHost"] == "mx1.down.test"
    assert not world.got("mx0.down.test", to)
    assert world.https.fetches("down.test") == 2


async def test_a_redirect_is_not_followed(transport_factory: Any, world: World) -> None:
    t = await internet(transport_factory, world)
    qid, to = await send(t, "redirect.test")
    assert (await sent_event(t, qid))["TlsPolicy"] == "opportunistic"
    assert world.got("mx.redirect.test", to)
    assert world.https.fetches("redirect.test") >= 1 and world.https.fetches("elsewhere.test") == 0



async def test_a_policy_larger_than_64_kb_is_not_used(transport_factory: Any, world: World) -> None:
    t = await internet(transport_factory, world)
    qid, to = await send(t, "huge.test")
    assert (await sent_event(t, qid))["TlsPolicy"] == "opportunistic"
    assert world.got("mx.none.test", to)
    explained = await t.service.services.tls.explain("huge.test")
    assert "larger than 64 KB" in explained["MtaSts"]["Error"] and explained["MtaSts"]["Mode"] is None
    # TLS reporting counts the session, made without the policy, as the policy's failure.
    await t.service.services.tls_reports.flush()
    [day] = await t.store.tls_reports.counts(domain="huge.test")
    [(policy, success, failures)] = day.policies
    assert policy["policy-type"] == "no-policy-found" and success == 0
    assert [f["result-type"] for f in failures] == ["sts-policy-invalid"]


# --- TLS reporting (RFC 8460) ----------------------------------------------------------------------


def _report(data: bytes) -> dict[str, Any]:
    return json.loads(gzip.decompress(data))


def _check_structure(report: dict[str, Any], domain: str) -> dict[str, Any]:
    """RFC 8460 section 4.4's fields; the one policy object of ``domain``."""
    assert set(report) >= {"organization-name", "date-range", "contact-info", "report-id", "policies"}
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert report["date-range"] == {"start-datetime": f"{day}T00:00:00Z", "end-datetime": f"{day}T23:59:59Z"}
    [policy] = report["policies"]
    assert policy["policy"]["policy-domain"] == domain and policy["policy"]["policy-type"] == "sts"
    assert set(policy["summary"]) == {"total-successful-session-count", "total-failure-session-count"}
    return policy  # type: ignore[no-any-return]


async def test_tls_reports_go_to_a_mailbox_and_an_https_collector(transport_factory: Any, world: World) -> None:
    t = await internet(transport_factory, world, tls_reporting={"organization_name": "Contoso",
                                                                "sender": "tlsrpt@contoso.test"})
    await t.service.services.dkim.new("contoso.test", None, 1024, True, False)  # the report is signed
    await t.service.keyring.refresh()
    for _ in range(2):  # each: mx0 refused by the enforced policy, mx1 delivered
        await sent_event(t, (await send(t, "skip.test"))[0])
    qid, _ = await send(t, "testing.test")  # testing: delivered, the untrusted certificate counted
    await sent_event(t, qid)
    results = await t.service.services.tls_reports.send(now=True)
    by_domain = {r["Domain"]: r for r in results}
    assert by_domain["skip.test"]["Destinations"]["mailto:tlsrpt@reports.test"].startswith("queued as")
    assert by_domain["testing.test"]["Destinations"][f"https://{COLLECTOR}/v1/tlsrpt"] == "HTTP 200"

    [mail] = await async_wait_for(lambda: [m for m in world.mailbox.messages if b"TLS-Report-Domain: skip.test" in m.data],
                                  what="the mailed TLS report")
    msg = mail.message
    assert msg.get_content_type() == "multipart/report" and msg.get_param("report-type") == "tlsrpt"
    assert msg["TLS-Report-Submitter"] == "exch01.contoso.test" and msg["From"] == "tlsrpt@contoso.test"
    assert [s for s in msg.get_all("DKIM-Signature", []) if "d=contoso.test" in s.replace(" ", "")]
    assert msg["Subject"].startswith("Report Domain: skip.test Submitter: exch01.contoso.test Report-ID: <")
    [part] = [p for p in msg.iter_attachments() if p.get_content_type() == "application/tlsrpt+gzip"]
    assert re.fullmatch(r"exch01\.contoso\.test!skip\.test!\d+!\d+!\w+\.json\.gz", part.get_filename() or "")
    report = _report(part.get_content())
    assert report["organization-name"] == "Contoso" and report["report-id"] == by_domain["skip.test"]["ReportId"]
    policy = _check_structure(report, "skip.test")
    assert "mode: enforce" in policy["policy"]["policy-string"] and policy["policy"]["mx-host"] == ["mx1.skip.test"]
    assert policy["summary"] == {"total-successful-session-count": 2, "total-failure-session-count": 2}
    [failure] = policy["failure-details"]
    assert failure["result-type"] == "validation-failure" and failure["receiving-mx-hostname"] == "mx0.skip.test"
    assert failure["failed-session-count"] == 2 and failure["receiving-ip"] == MX["mx0.skip.test"]

    [(body, ctype)] = world.https.posts(COLLECTOR, "/v1/tlsrpt")
    assert ctype == "application/tlsrpt+gzip"
    policy = _check_structure(_report(body), "testing.test")
    assert "mode: testing" in policy["policy"]["policy-string"]
    assert policy["summary"] == {"total-successful-session-count": 0, "total-failure-session-count": 1}
    [failure] = policy["failure-details"]
    assert failure["result-type"] == "certificate-not-trusted" and failure["receiving-mx-hostname"] == "mx.testing.test"

    # One report per domain and day: a second round sends nothing more.
    again = await t.service.services.tls_reports.send(now=True)
    assert not [r for r in again if r["Domain"] in ("skip.test", "testing.test")]
    assert len(world.https.posts(COLLECTOR, "/v1/tlsrpt")) == 1
    days = {d["Domain"]: d for d in await t.service.services.tls_reports.days()}
    assert days["skip.test"]["ReportId"] == report["report-id"] and days["skip.test"]["SentBy"] == "EXCH01"

    # The CLI asks the running server (its control socket), which saves its counts first.
    config = t.service.settings.data_dir.parent / "cli.toml"
    config.write_text(to_toml({"server": {"name": "EXCH01", "data_dir": str(t.service.settings.data_dir)}}))
    run = functools.partial(CliRunner().invoke, cli)
    listed = await asyncio.to_thread(run, ["--config", str(config), "tls", "report", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert {r["Domain"]: r["ReportId"] for r in json.loads(listed.output)}["skip.test"] == report["report-id"]
    shown = await asyncio.to_thread(run, ["--config", str(config), "tls", "report", "show", "skip.test"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["policies"][0]["summary"]["total-successful-session-count"] == 2
    bad = await asyncio.to_thread(run, ["--config", str(config), "tls", "report", "show", "skip.test", "--date", "May"])
    assert bad.exit_code == 1 and "is not a date" in str(bad.exception)
