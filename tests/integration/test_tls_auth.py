"""Outbound TLS policy and smart-host AUTH, and receive-side STARTTLS/AUTH, in one process.

The next hops are aiosmtpd receivers (tests/support/tlsfix.py) that record how each
message arrived: over TLS or not, the TLS version, the client certificate's subject and
the AUTH login, and every AUTH command and credential they were shown.  The receive
side is driven by swaks, a client no one here wrote.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from mailhop.model.connector import SendConnector, new_connector, to_exchange
from mailhop.receive.users import add_user
from tests.support.client import make_message, submit
from tests.support.net import free_port
from tests.support.sink import Sink
from tests.support.smtp import SwaksResult, swaks
from tests.support.tlsfix import Pki, Receiver
from tests.support.wait import async_wait_for

PASSWORD = "Tr0ub4dor-&-3-zq"
USER = "relay-svc@contoso.test"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def make(**kwargs: Any) -> Receiver:
        r = Receiver(**kwargs).start()
        started.append(r)
        return r

    yield make
    for r in started:
        r.stop()


async def add_relay(t: Any, receiver: Receiver, secret: str | None = None, **props: Any) -> SendConnector:
    """A smart-host connector "Relay" to ``receiver`` for every domain, as `mailhop connector new` makes it."""
    values = {"Name": "Relay", "DNSRoutingEnabled": "false", "SmartHosts": receiver.smart_host,
              "AddressSpaces": "*", **props}
    connector = new_connector(values, t.service.settings.server.name)
    await t.store.connectors.create(connector, secret=secret)
    await t.service.scheduler.watch.poll()
    return connector


async def send_one(t: Any, to: str = "bob@fabrikam.test", **kwargs: Any) -> int:
    sent = await submit(t.port, "alice@contoso.test", [to], **kwargs)
    return sent.queue_id


async def failed_attempt(t: Any, queue_id: int) -> str:
    """Wait until delivery of the message was attempted and failed; its recipient's LastError."""
    async def last_error() -> str | None:
        for info, rows in await t.store.queues.messages():
            if info.id == queue_id and rows[0].last_error:
                return str(rows[0].last_error)
        return None
    return await async_wait_for(last_error, what="a failed delivery attempt")


async def assert_still_queued(t: Any, queue_id: int) -> None:
    """The failure was temporary: the message waits in its queue, nothing bounced."""
    [rows] = [rs for i, rs in await t.store.queues.messages() if i.id == queue_id]
    assert rows[0].queue == "Relay" and rows[0].status in ("retry", "ready", "active")
    assert rows[0].last_error and rows[0].last_error.startswith("4")
    events = [e["EventId"] for e in t.tracking() if e.get("InternalMessageId") == queue_id]
    assert "FAIL" not in events and "DSN" not in events and "SEND" not in events


async def send_event(t: Any, queue_id: int) -> dict[str, Any]:
    [event] = await async_wait_for(
        lambda: [e for e in t.tracking() if e["EventId"] == "SEND" and e.get("InternalMessageId") == queue_id],
        what="the SEND event")
    return event


def assert_tls_event(event: dict[str, Any]) -> None:
    assert event["TlsVersion"].startswith("TLSv1."), event
    assert event["TlsCipher"], event


# --- 1. Opportunistic STARTTLS ------------------------------------------------------------------


async def test_opportunistic_starttls_by_default(transport_factory: Any, receiver_factory: Any, pki: Pki) -> None:
    # A certificate nobody trusts: opportunistic TLS encrypts without checking it.
    rx = receiver_factory(starttls=pki.server_context(pki.leaf("rogue", "relay.contoso.test", ca=pki.rogue)))
    t = await transport_factory()
    await add_relay(t, rx)
    qid = await send_one(t)
    [got] = await async_wait_for(lambda: rx.arrivals, what="delivery")
    assert got.tls and got.tls_version.startswith("TLSv1.")
    assert got.rcpt_tos == ["bob@fabrikam.test"]
    event = await send_event(t, qid)
    assert_tls_event(event)
    assert event["TlsVersion"] == got.tls_version and event["TlsCipher"] == got.tls_cipher


async def test_ignore_starttls_never_uses_tls(transport_factory: Any, receiver_factory: Any, pki: Pki) -> None:
    rx = receiver_factory(starttls=pki.server_context(pki.leaf("relay", "relay.contoso.test")))
    t = await transport_factory()
    await add_relay(t, rx, IgnoreSTARTTLS="true")
    qid = await send_one(t)
    [got] = await async_wait_for(lambda: rx.arrivals, what="delivery")
    assert not got.tls
    event = await send_event(t, qid)
    assert "TlsVersion" not in event and "TlsCipher" not in event


async def test_opportunistic_tls_handshake_failure_falls_back_to_clear_text(
        transport_factory: Any, receiver_factory: Any, pki: Pki) -> None:
    # STARTTLS is offered but every handshake fails (the server has no certificate).
    rx = receiver_factory(starttls=pki.server_context(None))
    t = await transport_factory()
    await add_relay(t, rx)
    qid = await send_one(t)
    [got] = await async_wait_for(lambda: rx.arrivals, what="delivery in clear text")
    assert not got.tls
    assert "TlsVersion" not in await send_event(t, qid)


async def test_basic_auth_is_never_sent_in_clear_after_a_failed_handshake(
        transport_factory: Any, receiver_factory: Any, pki: Pki) -> None:
    """Whoever breaks the handshake (a man in the middle) must not get the password in clear on the
    retry without TLS: with BasicAuth (not ...RequireTLS) the host is simply not tried in clear."""
    rx = receiver_factory(starttls=pki.server_context(None), users={USER: PASSWORD},
                          auth_require_tls=False)
    t = await transport_factory()
    await add_relay(t, rx, secret=PASSWORD, SmartHostAuthMechanism="BasicAuth", AuthenticationCredential=USER)
    qid = await send_one(t)
    error = await failed_attempt(t, qid)
    assert "never sent in clear text after a failed TLS handshake" in error, error
    assert rx.auth_commands == [] and rx.checks == [] and rx.arrivals == []
    await assert_still_queued(t, qid)


# --- 2. RequireTLS ------------------------------------------------------------------------------


async def test_require_tls_without_starttls_is_never_sent_in_clear(
        transport_factory: Any, receiver_factory: Any) -> None:
    rx = receiver_factory()  # no STARTTLS
    t = await transport_factory()
    await add_relay(t, rx, RequireTLS="true")
    qid = await send_one(t)
    error = await failed_attempt(t, qid)
    assert "did not offer STARTTLS" in error and "nothing was sent" in error
    assert rx.helos  # the host was reached ...
    assert rx.arrivals == []  # ... and given nothing
    await assert_still_queued(t, qid)

    async def queue_in_retry() -> Any:
        return [q for q in await t.store.queues.states() if q.queue == "Relay" and q.last_error]
    [queue] = await async_wait_for(queue_in_retry, what="the queue's LastError")
    assert "did not offer STARTTLS" in queue.last_error


async def test_require_tls_with_a_failed_handshake_does_not_fall_back(
        transport_factory: Any, receiver_factory: Any, pki: Pki) -> None:
    rx = receiver_factory(starttls=pki.server_context(None))
    t = await transport_factory()
    await add_relay(t, rx, RequireTLS="true")
    qid = await send_one(t)
    error = await failed_attempt(t, qid)
    assert "TLS negotiation with" in error
    assert rx.arrivals == []
    await assert_still_queued(t, qid)


# --- 3. CertificateValidation -------------------------------------------------------------------


@pytest.mark.parametrize(("case", "expected"), [("untrusted", "is not trusted"), ("expired", "has expired")])
async def test_certificate_validation_refuses(transport_factory: Any, receiver_factory: Any, pki: Pki,
                                              case: str, expected: str) -> None:
    if case == "untrusted":
        leaf = pki.leaf("relay", "relay.contoso.test", ca=pki.rogue)
    else:
        leaf = pki.leaf("relay", "relay.contoso.test", expired=True)
    rx = receiver_factory(starttls=pki.server_context(leaf))
    t = await transport_factory(tls={"ca_file": str(pki.ca_file), "use_system_ca": False})
    await add_relay(t, rx, RequireTLS="true", TlsAuthLevel="CertificateValidation")
    qid = await send_one(t)
    error = await failed_attempt(t, qid)
    assert expected in error, error
    assert f"127.0.0.1:{rx.port}" in error
    assert rx.arrivals == []
    await assert_still_queued(t, qid)


async def test_certificate_validation_with_trusted_chain(transport_factory: Any, receiver_factory: Any,
                                                         pki: Pki) -> None:
    rx = receiver_factory(starttls=pki.server_context(pki.leaf("relay", "relay.contoso.test")))
    t = await transport_factory(tls={"ca_file": str(pki.ca_file), "use_system_ca": False})
    await add_relay(t, rx, RequireTLS="true", TlsAuthLevel="CertificateValidation")
    qid = await send_one(t)
    [got] = await async_wait_for(lambda: rx.arrivals, what="delivery")
    assert got.tls
    assert_tls_event(await send_event(t, qid))


@pytest.mark.parametrize("revoked", [True, False])
async def test_certificate_validation_checks_the_crl(transport_factory: Any, receiver_factory: Any, pki: Pki,
                                                     revoked: bool) -> None:
    leaf = pki.leaf("relay", "relay.contoso.test")
    other = pki.leaf("other", "other.contoso.test")
    crl = pki.crl(leaf if revoked else other)
    rx = receiver_factory(starttls=pki.server_context(leaf))
    t = await transport_factory(tls={"ca_file": str(pki.ca_file), "use_system_ca": False, "crl_file": str(crl)})
    await add_relay(t, rx, RequireTLS="true", TlsAuthLevel="CertificateValidation")
    qid = await send_one(t)
    if revoked:
        error = await failed_attempt(t, qid)
        assert "has been revoked" in error, error
        assert rx.arrivals == []
        await assert_still_queued(t, qid)
    else:
        [got] = await async_wait_for(lambda: rx.arrivals, what="delivery")
        assert got.tls


# --- 4. DomainValidation ------------------------------------------------------------------------


@pytest.mark.parametrize(("tls_domain", "cert_name"), [
    ("relay.contoso.test", "mail.fabrikam.test"),
    ("*.contoso.test", "relay.fabrikam.test"),
    ("contoso.test", "relay.contoso.test"),          # no wildcard: the name itself, not its hosts
    ("a.relay.contoso.test", "*.contoso.test"),      # a wildcard covers exactly one label
])
async def test_domain_validation_name_mismatch(transport_factory: Any, receiver_factory: Any, pki: Pki,
                                               tls_domain: str, cert_name: str) -> None:
    rx = receiver_factory(starttls=pki.server_context(pki.leaf("relay", cert_name)))
    t = await transport_factory(tls={"ca_file": str(pki.ca_file), "use_system_ca": False})
    await add_relay(t, rx, RequireTLS="true", TlsAuthLevel="DomainValidation", TlsDomain=tls_domain)
    qid = await send_one(t)
    error = await failed_attempt(t, qid)
    assert "TLS certificate name mismatch" in error, error
    assert cert_name in error
    assert rx.arrivals == []
    await assert_still_queued(t, qid)


@pytest.mark.parametrize(("tls_domain", "cert_names"), [
    ("relay.contoso.test", ("relay.contoso.test",)),
    ("relay.contoso.test", ("mail.contoso.test", "relay.contoso.test")),  # a SAN that is not the first
    ("*.contoso.test", ("relay.contoso.test",)),
    ("relay.contoso.test", ("*.contoso.test",)),
])
async def test_domain_validation_accepts_matching_names(transport_factory: Any, receiver_factory: Any, pki: Pki,
                                                        tls_domain: str, cert_names: tuple[str, ...]) -> None:
    rx = receiver_factory(starttls=pki.server_context(pki.leaf("relay", *cert_names)))
    t = await transport_factory(tls={"ca_file": str(pki.ca_file), "use_system_ca": False})
    await add_relay(t, rx, RequireTLS="true", TlsAuthLevel="DomainValidation", TlsDomain=tls_domain)
    qid = await send_one(t)
    [got] = await async_wait_for(lambda: rx.arrivals, what="delivery")
    assert got.tls
    assert_tls_event(await send_event(t, qid))


# --- 5. EncryptionOnly --------------------------------------------------------------------------


async def test_encryption_only_accepts_an_untrusted_certificate(transport_factory: Any, receiver_factory: Any,
                                                                pki: Pki) -> None:
    rx = receiver_factory(starttls=pki.server_context(pki.leaf("rogue", "relay.contoso.test", ca=pki.rogue)))
    t = await transport_factory(tls={"ca_file": str(pki.ca_file), "use_system_ca": False})
    await add_relay(t, rx, RequireTLS="true", TlsAuthLevel="EncryptionOnly")
    qid = await send_one(t)
    [got] = await async_wait_for(lambda: rx.arrivals, what="delivery")
    assert got.tls
    assert_tls_event(await send_event(t, qid))


# --- 6. Client certificates ---------------------------------------------------------------------


@pytest.mark.parametrize("by", ["name", "issuer-subject"])
async def test_client_certificate_is_presented(transport_factory: Any, receiver_factory: Any, pki: Pki,
                                               by: str) -> None:
    other = pki.leaf("other", "other.contoso.test")
    mine = pki.leaf("exch01", "exch01.contoso.test")
    rx = receiver_factory(starttls=pki.server_context(pki.leaf("relay", "relay.contoso.test"), ask_client_cert=True))
    t = await transport_factory(certificates=[
        {"name": "Other Cert", "cert_file": str(other.cert_file), "key_file": str(other.key_file)},
        {"name": "Exch01 Cert", "cert_file": str(mine.cert_file), "key_file": str(mine.key_file)},
    ])
    name = "Exch01 Cert" if by == "name" else mine.exchange_name
    if by == "issuer-subject":
        assert name.startswith("<I>") and "O=Contoso Test CA<S>CN=exch01.contoso.test, " in name
    await add_relay(t, rx, TlsCertificateName=name)
    await send_one(t)
    [got] = await async_wait_for(lambda: rx.arrivals, what="delivery")
    assert got.tls
    assert got.peer_subject is not None, "no client certificate was presented"
    assert got.peer_subject["commonName"] == "exch01.contoso.test"


@pytest.mark.parametrize("problem", ["unknown name", "key does not match"])
async def test_client_certificate_that_cannot_be_used(transport_factory: Any, receiver_factory: Any, pki: Pki,
                                                      problem: str) -> None:
    mine = pki.leaf("exch01", "exch01.contoso.test")
    other = pki.leaf("other", "other.contoso.test")
    rx = receiver_factory(starttls=pki.server_context(pki.leaf("relay", "relay.contoso.test"), ask_client_cert=True))
    t = await transport_factory(certificates=[
        {"name": "Exch01 Cert", "cert_file": str(mine.cert_file), "key_file": str(other.key_file)},
    ])
    await add_relay(t, rx, TlsCertificateName="No Such Cert" if problem == "unknown name" else "Exch01 Cert")
    qid = await send_one(t)
    error = await failed_attempt(t, qid)
    if problem == "unknown name":
        assert "'No Such Cert' matches no [[certificates]] entry" in error, error
    else:
        assert "client certificate 'Exch01 Cert' cannot be used (NoCredentials)" in error, error
    assert rx.arrivals == []
    await assert_still_queued(t, qid)


# --- 7. Smart-host AUTH -------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_basic_auth_with_the_only_mechanism_offered(transport_factory: Any, receiver_factory: Any,
                                                          pki: Pki, mechanism: str) -> None:
    rx = receiver_factory(starttls=pki.server_context(pki.leaf("relay", "relay.contoso.test")),
                          users={USER: PASSWORD}, mechanisms=(mechanism,))
    t = await transport_factory()
    await add_relay(t, rx, secret=PASSWORD, SmartHostAuthMechanism="BasicAuth", AuthenticationCredential=USER)
    qid = await send_one(t)
    [got] = await async_wait_for(lambda: rx.arrivals, what="authenticated delivery")
    assert got.auth_login == USER and got.tls
    assert rx.auth_commands == [mechanism]
    [check] = rx.checks
    assert (check.mechanism, check.login, check.secret, check.ok) == (mechanism, USER, PASSWORD, True)
    assert_tls_event(await send_event(t, qid))


async def test_wrong_password_leaves_the_message_queued(transport_factory: Any, receiver_factory: Any,
                                                        pki: Pki) -> None:
    rx = receiver_factory(starttls=pki.server_context(pki.leaf("relay", "relay.contoso.test")),
                          users={USER: PASSWORD})
    t = await transport_factory()
    await add_relay(t, rx, secret="not-the-password", SmartHostAuthMechanism="BasicAuth",
                    AuthenticationCredential=USER)
    qid = await send_one(t)
    error = await failed_attempt(t, qid)
    assert "refused" in error and "535" in error and USER in error, error
    assert "not-the-password" not in error
    assert rx.checks and not any(c.ok for c in rx.checks)
    assert rx.checks[0].secret == "not-the-password"
    assert rx.arrivals == []
    await assert_still_queued(t, qid)
    # The administrator stores the right password (--password-file): a retry authenticates and delivers.
    await t.store.connectors.update("Relay", lambda c: c, secret=PASSWORD)
    [got] = await async_wait_for(lambda: rx.arrivals, what="delivery once the password is right")
    assert got.auth_login == USER
    assert rx.checks[-1].ok and rx.checks[-1].secret == PASSWORD


@pytest.mark.parametrize("mechanism", ["BasicAuthRequireTLS", "XOAUTH2"])
async def test_credentials_are_never_sent_in_clear_text(transport_factory: Any, receiver_factory: Any,
                                                        tmp_path: Path, mechanism: str) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("ya29.secret-token")
    # The host offers AUTH in clear text and no STARTTLS.
    rx = receiver_factory(users={USER: PASSWORD}, tokens={USER: "ya29.secret-token"},
                          mechanisms=("PLAIN", "LOGIN", "XOAUTH2"), auth_require_tls=False)
    t = await transport_factory(server={"token_directory": str(tmp_path)})
    if mechanism == "XOAUTH2":
        await add_relay(t, rx, SmartHostAuthMechanism="XOAUTH2", AuthenticationCredential=USER,
                        AuthenticationTokenFile=str(token_file))
    else:
        await add_relay(t, rx, secret=PASSWORD, SmartHostAuthMechanism=mechanism, AuthenticationCredential=USER)
    qid = await send_one(t)
    error = await failed_attempt(t, qid)
    assert "did not offer TLS" in error and "credentials were not sent" in error, error
    assert rx.helos
    assert rx.auth_commands == [] and rx.checks == []
    assert rx.arrivals == []
    await assert_still_queued(t, qid)


async def test_basic_auth_require_tls_authenticates_after_starttls(transport_factory: Any, receiver_factory: Any,
                                                                   pki: Pki) -> None:
    rx = receiver_factory(starttls=pki.server_context(pki.leaf("relay", "relay.contoso.test")),
                          users={USER: PASSWORD})
    t = await transport_factory()
    await add_relay(t, rx, secret=PASSWORD, SmartHostAuthMechanism="BasicAuthRequireTLS",
                    AuthenticationCredential=USER)
    await send_one(t)
    [got] = await async_wait_for(lambda: rx.arrivals, what="authenticated delivery")
    assert got.tls and got.auth_login == USER


async def test_xoauth2_with_a_token_file(transport_factory: Any, receiver_factory: Any, pki: Pki,
                                         tmp_path: Path) -> None:
    token = "ya29.a0AfH6SM-test-token"
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    rx = receiver_factory(starttls=pki.server_context(pki.leaf("relay", "relay.contoso.test")),
                          tokens={USER: token}, mechanisms=("XOAUTH2", "PLAIN", "LOGIN"))
    t = await transport_factory(server={"token_directory": str(tmp_path)})
    await add_relay(t, rx, SmartHostAuthMechanism="XOAUTH2", AuthenticationCredential=USER,
                    AuthenticationTokenFile=str(token_file))
    qid = await send_one(t)
    [got] = await async_wait_for(lambda: rx.arrivals, what="delivery with XOAUTH2")
    assert got.tls and got.auth_login == USER
    assert rx.auth_commands == ["XOAUTH2"]
    [check] = rx.checks
    assert (check.mechanism, check.login, check.secret, check.ok) == ("XOAUTH2", USER, token, True)
    # The token is a secret too.
    assert token not in json.dumps(t.tracking())
    assert_tls_event(await send_event(t, qid))


async def test_xoauth2_token_file_is_read_at_each_connection(transport_factory: Any, receiver_factory: Any,
                                                             pki: Pki, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first-token")
    rx = receiver_factory(starttls=pki.server_context(pki.leaf("relay", "relay.contoso.test")),
                          tokens={USER: "first-token"}, mechanisms=("XOAUTH2",))
    t = await transport_factory(server={"token_directory": str(tmp_path)})
    await add_relay(t, rx, SmartHostAuthMechanism="XOAUTH2", AuthenticationCredential=USER,
                    AuthenticationTokenFile=str(token_file), SmtpMaxMessagesPerConnection="1")
    await send_one(t, to="one@fabrikam.test")
    await async_wait_for(lambda: rx.arrivals, what="first delivery")
    # An external refresher replaces the token; the old one stops working.
    token_file.write_text("second-token\n")
    rx.handler.tokens[USER] = "second-token"
    await send_one(t, to="two@fabrikam.test")
    await async_wait_for(lambda: len(rx.arrivals) == 2, what="second delivery with the new token")
    assert [(c.secret, c.ok) for c in rx.checks] == [("first-token", True), ("second-token", True)]


# --- 8. The password never leaks ----------------------------------------------------------------


def _secret_forms(user: str, password: str) -> list[str]:
    return [password, base64.b64encode(password.encode()).decode(),
            base64.b64encode(f"\0{user}\0{password}".encode()).decode()]


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_password_is_never_logged_or_shown(transport_factory: Any, receiver_factory: Any, pki: Pki,
                                                 mechanism: str) -> None:
    rx = receiver_factory(starttls=pki.server_context(pki.leaf("relay", "relay.contoso.test")),
                          users={USER: PASSWORD}, mechanisms=(mechanism,))
    t = await transport_factory()
    await add_relay(t, rx, secret=PASSWORD, SmartHostAuthMechanism="BasicAuth", AuthenticationCredential=USER,
                    ProtocolLoggingLevel="Verbose")
    qid = await send_one(t)
    await async_wait_for(lambda: rx.arrivals, what="authenticated delivery")
    await send_event(t, qid)
    tracking = json.dumps(t.tracking())
    for plog in t.service.logs:
        plog.flush()
    folder = t.service.settings.data_dir / "logs" / "ProtocolLog" / "SmtpSend"
    protocol = "".join(p.read_text() for p in sorted(folder.glob("*.log")))
    assert f"AUTH {mechanism} ****" in protocol  # the session was logged, without the secret
    assert "235" in protocol
    shown = json.dumps(to_exchange(await t.store.connectors.get("Relay")))
    assert shown and USER in shown
    for form in _secret_forms(USER, PASSWORD):
        assert form not in tracking
        assert form not in protocol
        assert form not in shown


# --- 9. Implicit TLS ----------------------------------------------------------------------------


async def test_tls_wrapper_delivers_over_implicit_tls(transport_factory: Any, receiver_factory: Any,
                                                      pki: Pki) -> None:
    rx = receiver_factory(smtps=pki.server_context(pki.leaf("relay", "relay.contoso.test")))
    t = await transport_factory()
    await add_relay(t, rx, TlsWrapper="true")
    qid = await send_one(t)
    [got] = await async_wait_for(lambda: rx.arrivals, what="delivery over SMTPS")
    assert got.tls and got.tls_version.startswith("TLSv1.")
    event = await send_event(t, qid)
    assert_tls_event(event)
    assert event["TlsVersion"] == got.tls_version


async def test_tls_wrapper_with_certificate_validation_refuses_an_untrusted_host(
        transport_factory: Any, receiver_factory: Any, pki: Pki) -> None:
    rx = receiver_factory(smtps=pki.server_context(pki.leaf("rogue", "relay.contoso.test", ca=pki.rogue)))
    t = await transport_factory(tls={"ca_file": str(pki.ca_file), "use_system_ca": False})
    await add_relay(t, rx, TlsWrapper="true", RequireTLS="true", TlsAuthLevel="CertificateValidation")
    qid = await send_one(t)
    error = await failed_attempt(t, qid)
    assert "is not trusted" in error, error
    assert rx.arrivals == []
    await assert_still_queued(t, qid)


# --- 10. CloudServicesMailEnabled ---------------------------------------------------------------


@pytest.mark.parametrize("cloud", [False, True])
async def test_internal_headers_and_cloud_services_mail(transport_factory: Any, receiver_factory: Any,
                                                        cloud: bool) -> None:
    rx = receiver_factory()
    t = await transport_factory()
    props = {"CloudServicesMailEnabled": "true"} if cloud else {}
    await add_relay(t, rx, **props)
    data = make_message(subject="Hybrid", headers={
        "X-MS-Exchange-Organization-AuthAs": "Internal",
        "x-ms-exchange-organization-scl": "-1\r\n\tfolded-continuation",  # any case, folded
        "X-Keep-Me": "yes",
    }, body="X-MS-Exchange-Organization-Note: a body line, not a header\r\n")
    await send_one(t, data=data)
    [got] = await async_wait_for(lambda: rx.arrivals, what="delivery")
    msg = got.message
    assert msg["X-Keep-Me"] == "yes" and msg["Subject"] == "Hybrid"
    assert got.data.endswith(b"\r\n\r\nX-MS-Exchange-Organization-Note: a body line, not a header\r\n")
    head = got.data.split(b"\r\n\r\n", 1)[0]
    if cloud:
        assert msg["X-MS-Exchange-Organization-AuthAs"] == "Internal"
        assert b"\tfolded-continuation" in head
    else:
        assert msg["X-MS-Exchange-Organization-AuthAs"] is None
        assert b"x-ms-exchange-organization" not in head.lower()
        assert b"folded-continuation" not in head


# --- 11. Receive side: STARTTLS and AUTH, with swaks --------------------------------------------


class ReceiveSide:
    def __init__(self, t: Any, auth_port: int, strict_port: int, sink: Sink) -> None:
        self.t = t
        self.auth_port = auth_port
        self.strict_port = strict_port
        self.sink = sink

    async def swaks(self, port: int, *args: str) -> SwaksResult:
        # The service runs on this event loop: swaks must not block it.
        return await asyncio.to_thread(swaks, port, *args, timeout=30)


@pytest.fixture
async def receive_side(transport_factory: Any, sink: Sink, pki: Pki, tmp_path: Path) -> ReceiveSide:
    users = tmp_path / "users"
    add_user(users, "smtpuser", PASSWORD)
    leaf = pki.leaf("exch01", "exch01.contoso.test")
    auth_port, strict_port = free_port(), free_port()
    tls = {"tls_certificate": str(leaf.cert_file), "tls_key": str(leaf.key_file)}
    t = await transport_factory(server={"users_file": str(users)}, receive_connectors=[
        {"name": "Client Submission", "bind": f"127.0.0.1:{auth_port}", "remote_ip_ranges": ["127.0.0.2"],
         "failed_login_delay": "0.05s", **tls},
        {"name": "TLS Only", "bind": f"127.0.0.1:{strict_port}", "remote_ip_ranges": ["127.0.0.0/8"],
         "require_tls": True, "failed_login_delay": "0.05s", **tls},
    ])
    await t.connector(Name="Out", DNSRoutingEnabled="false", SmartHosts=f"[127.0.0.1]:{sink.port}",
                      AddressSpaces="*")
    return ReceiveSide(t, auth_port, strict_port, sink)


def _server_lines(output: str, tls: bool) -> list[str]:
    """What the server said: swaks marks it ``<-`` (``<**`` for an error) in clear text and
    ``<~`` (``<~*``) inside TLS."""
    markers = ("<~",) if tls else ("<-", "<**")
    return [line[3:].strip() for line in output.splitlines() if line.startswith(markers)]


async def test_receive_offers_starttls_and_auth_only_after_it(receive_side: ReceiveSide) -> None:
    r = await receive_side.swaks(receive_side.auth_port, "-tls", "--quit-after", "EHLO")
    assert r.returncode == 0, r.output
    clear, tls = _server_lines(r.output, tls=False), _server_lines(r.output, tls=True)
    assert any(line.endswith("STARTTLS") for line in clear), r.output
    assert not any("AUTH" in line for line in clear), r.output
    assert any(line.endswith("AUTH PLAIN LOGIN") for line in tls), r.output
    assert not any("STARTTLS" in line for line in tls), r.output
    # A client that sends AUTH in clear text anyway is refused, even with the right password.
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=receive_side.auth_port, start_tls=False)
    await smtp.connect()
    try:
        await smtp.ehlo()
        blob = base64.b64encode(f"\0smtpuser\0{PASSWORD}".encode())
        reply = await smtp.execute_command(b"AUTH", b"PLAIN", blob)
        assert (reply.code, reply.message.split()[0]) == (538, "5.7.11"), reply
    finally:
        await smtp.quit()


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_receive_auth_relays_from_outside_the_ranges(receive_side: ReceiveSide, mechanism: str) -> None:
    side = receive_side
    r = await side.swaks(side.auth_port, "-tls", "--auth", mechanism, "--auth-user", "smtpuser",
                         "--auth-password", PASSWORD, "--from", "alice@contoso.test", "--to", "bob@fabrikam.test",
                         "--h-Subject", "Authenticated")
    assert r.returncode == 0, r.output
    tls = _server_lines(r.output, tls=True)
    assert any(line.startswith("235 2.7.0") for line in tls), r.output
    [got] = await async_wait_for(lambda: side.sink.for_recipient("bob@fabrikam.test"), what="relayed message")
    top = got.received()[0]
    assert "with ESMTPSA" in top, top
    assert "(using TLSv1." in top, top
    assert "authenticated as smtpuser" in top
    assert "[127.0.0.1]" in top
    [event] = [e for e in side.t.tracking() if e["EventId"] == "RECEIVE"]
    assert event["AuthUser"] == "smtpuser"
    assert event["ClientIp"] == "127.0.0.1"


async def test_receive_user_added_while_running_can_log_in(receive_side: ReceiveSide, tmp_path: Path) -> None:
    side = receive_side
    args = ("-tls", "--auth", "PLAIN", "--auth-user", "newcomer", "--auth-password", "n3w-pa55", "--quit-after", "AUTH")
    r = await side.swaks(side.auth_port, *args)
    assert any(line.startswith("535 5.7.8") for line in _server_lines(r.output, tls=True)), r.output
    add_user(tmp_path / "users", "newcomer", "n3w-pa55")
    r = await side.swaks(side.auth_port, *args)
    assert r.returncode == 0, r.output
    assert any(line.startswith("235 2.7.0") for line in _server_lines(r.output, tls=True)), r.output


async def test_receive_wrong_password_then_relay_refused(receive_side: ReceiveSide) -> None:
    side = receive_side
    r = await side.swaks(side.auth_port, "-tls", "--auth-optional", "PLAIN", "--auth-user", "smtpuser",
                         "--auth-password", "wrong-password", "--from", "alice@contoso.test",
                         "--to", "bob@fabrikam.test")
    tls = _server_lines(r.output, tls=True)
    assert any(line.startswith("535 5.7.8") for line in tls), r.output
    assert any(line.startswith("550 5.7.54") for line in tls), r.output
    assert r.returncode != 0
    assert await side.t.store.queues.messages() == []
    assert not [e for e in side.t.tracking() if e["EventId"] == "RECEIVE"]


async def test_receive_require_tls_refuses_mail_before_starttls(receive_side: ReceiveSide) -> None:
    side = receive_side
    r = await side.swaks(side.strict_port, "--from", "alice@contoso.test", "--to", "bob@fabrikam.test")
    assert r.returncode != 0
    assert any(line.startswith("530 5.7.0") for line in _server_lines(r.output, tls=False)), r.output
    assert not [e for e in side.t.tracking() if e["EventId"] == "RECEIVE"]
    # The same message over STARTTLS is accepted (the client is inside the ranges).
    r = await side.swaks(side.strict_port, "-tls", "--from", "alice@contoso.test", "--to", "carol@fabrikam.test")
    assert r.returncode == 0, r.output
    [got] = await async_wait_for(lambda: side.sink.for_recipient("carol@fabrikam.test"), what="relayed message")
    assert "with ESMTPS " in got.received()[0]
    assert side.sink.for_recipient("bob@fabrikam.test") == []
