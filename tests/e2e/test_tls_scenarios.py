"""The seed's EOP smart host and a Partner connector, against a real Postfix with TLS.

Postfix (Debian's) plays Exchange Online Protection: it accepts mail only over
TLS from a client that presents a certificate its CA signed.  Its Received:
header records the TLS session and the client certificate it verified.
Names resolve through a real DNS server (dnsmasq) on loopback.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.support.dns import DnsServer
from tests.support.mailhop import Mailhop
from tests.support.postfix import Postfix
from tests.support.sink import Sink
from tests.support.smtp import swaks
from tests.support.wait import wait_for


class Pki:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = trustme.CA(organization_name="Contoso Test CA")
        self.ca_file = root / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))

    def leaf(self, name: str, *identities: str, ca: trustme.CA | None = None) -> tuple[Path, Path]:
        cert = (ca or self.ca).issue_cert(*identities, common_name=identities[0])
        cert_file, key_file = self.root / f"{name}.pem", self.root / f"{name}.key"
        cert_file.write_bytes(b"".join(c.bytes() for c in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(str(key_file))
        return cert_file, key_file


@pytest.fixture
def pki() -> Iterator[Pki]:
    root = Path(tempfile.mkdtemp(prefix="mailhop-pki-"))
    root.chmod(0o755)  # Postfix's daemons read the files too
    yield Pki(root)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    with DnsServer(a={"relay.contoso.test": "127.0.0.1", "smtp.partner.test": "127.0.0.1"}) as server:
        yield server


def tls_postfix(postfix_factory: Callable[..., Postfix], pki: Pki, require_client_cert: bool,
                name: str = "relay.contoso.test") -> Postfix:
    cert, key = pki.leaf("postfix", name)
    extra = {
        "smtpd_tls_cert_file": str(cert), "smtpd_tls_key_file": str(key), "smtpd_tls_CAfile": str(pki.ca_file),
        "smtpd_tls_security_level": "encrypt", "smtpd_tls_received_header": "yes", "smtpd_tls_loglevel": "1",
        "smtpd_tls_ask_ccert": "yes",
    }
    if require_client_cert:
        extra["smtpd_tls_req_ccert"] = "yes"
    return postfix_factory(name, extra=extra)


def test_eop_smart_host_with_client_certificate(mailhop_factory: Callable[..., Mailhop], pki: Pki,
                                                postfix_factory: Callable[..., Postfix], capture: Sink,
                                                dns_server: DnsServer) -> None:
    pf = tls_postfix(postfix_factory, pki, require_client_cert=True)
    client_cert, client_key = pki.leaf("exch01", "exch01.contoso.test")
    m = mailhop_factory(dns={"nameservers": [dns_server.nameserver]}, tls={"ca_file": str(pki.ca_file)},
                        certificates=[{"name": "exch01.contoso.test", "cert_file": str(client_cert),
                                       "key_file": str(client_key)}]).start()
    # The seed's command, with local names (and the test's port for the smart host).
    out = m.cli("connector", "new", "EOP Smarthost", "--usage", "internet", "--address-spaces", "*",
                "--cloud-services-mail-enabled", "true", "--require-tls", "true", "--dns-routing-enabled", "false",
                "--smart-hosts", "relay.contoso.test", "--tls-auth-level", "CertificateValidation",
                "--fqdn", "exch01.contoso.test", "--source-transport-servers", "EXCH01,EXCH02",
                "--tls-certificate-name", "exch01.contoso.test", "--port", str(pf.listeners[0].port)).stdout
    assert out.splitlines()[2].split() == ["EOP", "Smarthost", "{smtp:*;1}", "True"]
    sent = swaks(m.port, "--from", "alice@contoso.test", "--to", "bob@gmail.test", "--h-Subject", "Via EOP",
                 "--header", "X-MS-Exchange-Organization-AuthAs: Internal")
    assert sent.returncode == 0, sent.output
    [got] = wait_for(lambda: capture.for_recipient("bob@gmail.test"), what="delivery through the TLS smart host")
    top = got.received()[0]
    # Figure 6 of the seed: the smart host received it over TLS from exch01 ...
    assert top.startswith("from exch01.contoso.test") and "by relay.contoso.test (Postfix)" in top
    assert "with ESMTPS" in top and "(using TLSv1." in top
    # ... and verified the certificate exch01 presented.
    assert 'Client CN "exch01.contoso.test"' in top and "verified OK" in top
    # CloudServicesMailEnabled keeps the organization's headers on the way out.
    assert got.message["X-MS-Exchange-Organization-AuthAs"] == "Internal"
    send = [e for e in m.tracking() if e["EventId"] == "SEND"]
    assert send and send[0]["TlsVersion"].startswith("TLSv1.") and send[0]["TlsCipher"]


def test_eop_refuses_a_server_without_its_certificate(mailhop_factory: Callable[..., Mailhop], pki: Pki,
                                                      postfix_factory: Callable[..., Postfix], capture: Sink,
                                                      dns_server: DnsServer) -> None:
    pf = tls_postfix(postfix_factory, pki, require_client_cert=True)
    m = mailhop_factory(dns={"nameservers": [dns_server.nameserver]}, tls={"ca_file": str(pki.ca_file)}).start()
    m.cli("connector", "new", "EOP Smarthost", "--usage", "internet", "--address-spaces", "*",
          "--require-tls", "true", "--dns-routing-enabled", "false", "--smart-hosts", "relay.contoso.test",
          "--tls-auth-level", "CertificateValidation", "--port", str(pf.listeners[0].port))
    assert swaks(m.port, "--from", "alice@contoso.test", "--to", "bob@gmail.test").returncode == 0
    queue: dict[str, Any] = wait_for(
        lambda: next((q for q in m.cli_json("queue", "list") if q["Identity"] == "EOP Smarthost"
                      and q["LastError"]), None), what="a failed attempt")
    assert queue["Status"] == "Retry" and queue["LastError"].startswith("4")
    assert capture.messages == []
    assert "closed the connection right after the TLS handshake" in queue["LastError"]
    assert "client certificate" in queue["LastError"]
    assert "No client certificate presented" in pf.maillog()


def test_partner_connector_forces_verified_tls(mailhop_factory: Callable[..., Mailhop], pki: Pki,
                                               postfix_factory: Callable[..., Postfix], capture: Sink,
                                               dns_server: DnsServer) -> None:
    # A partner receives mail for partner.test at smtp.partner.test, with a certificate for that name.
    pf = tls_postfix(postfix_factory, pki, require_client_cert=False, name="smtp.partner.test")
    m = mailhop_factory(dns={"nameservers": [dns_server.nameserver]}, tls={"ca_file": str(pki.ca_file)}).start()
    m.cli("connector", "new", "To Partner", "--usage", "partner", "--address-spaces", "partner.test",
          "--dns-routing-enabled", "false", "--smart-hosts", "smtp.partner.test", "--tls-domain", "smtp.partner.test",
          "--port", str(pf.listeners[0].port))
    shown = m.cli_json("connector", "show", "To Partner")
    assert shown["RequireTLS"] is True and shown["TlsAuthLevel"] == "DomainValidation"
    assert swaks(m.port, "--from", "alice@contoso.test", "--to", "carol@partner.test").returncode == 0
    [got] = wait_for(lambda: capture.for_recipient("carol@partner.test"), what="partner delivery")
    assert "with ESMTPS" in got.received()[0]
    # The same partner behind a certificate for another name: refused, and the reason is named.
    m.cli("connector", "set", "To Partner", "--tls-domain", "mail.partner.test")
    m.wait_config(2)
    assert swaks(m.port, "--from", "alice@contoso.test", "--to", "dave@partner.test").returncode == 0
    queue: dict[str, Any] = wait_for(
        lambda: next((q for q in m.cli_json("queue", "list") if q["Identity"] == "To Partner"
                      and q["LastError"]), None), what="a refused attempt")
    assert "TLS certificate name mismatch" in queue["LastError"] and "mail.partner.test" in queue["LastError"]
    assert capture.for_recipient("dave@partner.test") == []
