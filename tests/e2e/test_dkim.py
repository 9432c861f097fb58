"""The issue's "done when", as an administrator does it: ``mailhop dkim new``, publish what it
printed, send through the seed's "To Internet" connector, and OpenDKIM says pass.

A real ``mailhop serve`` whose DNS is a dnsmasq: fabrikam.test's MX is a capture sink on
127.0.0.2; contoso.test's selector records appear once the test publishes the ``Records``
that ``mailhop dkim new --json`` gave.  OpenDKIM (Debian's, in test mode) verifies the RSA
signature and the Ed25519 one against the same dnsmasq; dkimpy checks both again.  Then
``mailhop domain check`` says what is still missing (SPF, DMARC, reverse DNS).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.dkim_verify import dkimpy, opendkim
from tests.support.dns import DnsServer, shared_tcp_port
from tests.support.mailhop import Mailhop
from tests.support.sink import Sink
from tests.support.smtp import swaks
from tests.support.wait import wait_for

MX = "127.0.0.2"
BASE: dict[str, Any] = {"mx": {"fabrikam.test": [(10, "mx.fabrikam.test")]}, "a": {"mx.fabrikam.test": MX}}


@pytest.fixture
def zone() -> Iterator[DnsServer]:
    server = DnsServer(**BASE).start()
    yield server
    server.stop()


def test_new_publish_send_and_opendkim_says_pass(mailhop_factory: Callable[..., Mailhop], zone: DnsServer) -> None:
    port = shared_tcp_port([MX])
    mx = Sink(host=MX, port=port).start()
    try:
        m = mailhop_factory(dns={"nameservers": [zone.nameserver], "timeout": "1s", "lifetime": "3s"}).start()
        m.cli("connector", "new", "To Internet", "--usage", "internet", "--address-spaces", "*", "--port", str(port))

        config = m.cli_json("dkim", "new", "contoso.test")
        assert config["Algorithms"] == ["rsa-sha256", "ed25519-sha256"] and config["KeySize"] == 2048
        assert config["Status"] == "KeyNotPublished"
        human = m.cli("dkim", "show", "contoso.test").stdout
        assert config["Selector1PublicKey"] in human and "KeyNotPublished" in human

        # The administrator publishes exactly what was printed.
        zone.restart(**BASE, txt={r["Name"]: [r["Value"]] for r in config["Records"]})
        shown = m.cli_json("dkim", "show", "contoso.test")
        assert shown["Status"] == "Valid", shown
        assert shown["LastChecked"] is not None
        wait_for(lambda: "contoso.test (selector1, selector1-ed25519)" in m.log(), what="the server to load the keys")

        sent = swaks(m.port, "--from", "alice@contoso.test", "--to", "bob@fabrikam.test",
                     "--header", "Subject: signed by mailhop", "--body", "Hello from contoso.\n")
        assert sent.returncode == 0, sent.output
        [got] = wait_for(lambda: mx.messages, what="delivery to fabrikam.test's MX")
        assert got.data.count(b"DKIM-Signature:") == 2
        assert opendkim(got.data, zone) == {"selector1": "pass", "selector1-ed25519": "pass"}
        assert dkimpy(got.data, zone) == {"selector1": True, "selector1-ed25519": True}

        # What a provider would object to: DKIM is published, nothing else is.
        check = m.cli("domain", "check", "contoso.test", "--ip", "127.0.0.1", "--json", check=False)
        assert check.returncode == 1, check.stderr
        report = json.loads(check.stdout)
        verdicts = {row["Check"]: row["Result"] for row in report["Checks"]}
        assert verdicts == {"SPF": "Fail", "DKIM": "Pass", "DMARC": "Fail", "ReverseDNS": "Fail",
                            "MTA-STS": "Warn", "TLS-RPT": "Warn"}, report
        assert report["Result"] == "Fail" and report["SendingIpsFrom"] == "--ip"
    finally:
        mx.stop()
