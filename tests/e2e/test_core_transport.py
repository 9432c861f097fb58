"""The seed's smart-host scenario, for real: swaks -> mailhop serve -> Postfix -> capture.

Each test starts ``mailhop serve`` as a subprocess with its own config and data
directory, configures it with the ``mailhop`` CLI as an administrator would, and
checks what the far side received.
"""

from __future__ import annotations

import email
import email.policy
import threading
from collections.abc import Callable
from typing import Any

from tests.support.mailhop import Mailhop
from tests.support.net import free_port
from tests.support.postfix import Postfix
from tests.support.sink import Captured, Sink
from tests.support.smtp import swaks
from tests.support.wait import wait_for


def delivery_status(captured: Captured) -> str:
    msg = email.message_from_bytes(captured.data, policy=email.policy.compat32)
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            return "\n".join(str(p) for p in part.get_payload())
    raise AssertionError("not a DSN")


def smarthost(m: Mailhop, pf: Postfix, name: str = "Smarthost To Internet", *extra: str) -> None:
    m.cli("connector", "new", name, "--usage", "internet", "--dns-routing-enabled", "false",
          "--smart-hosts", f"[127.0.0.1]:{pf.listeners[0].port}", "--address-spaces", "*", *extra)


def test_relay_through_postfix_smart_host(mailhop_factory: Callable[..., Mailhop],
                                          postfix_factory: Callable[..., Postfix], capture: Sink) -> None:
    pf = postfix_factory("relay.contoso.test")
    m = mailhop_factory().start()
    out = m.cli("connector", "new", "Smarthost To Internet", "--usage", "internet", "--dns-routing-enabled",
                "false", "--smart-hosts", f"[127.0.0.1]:{pf.listeners[0].port}", "--address-spaces", "*").stdout
    assert out.splitlines() == [
        "Identity              AddressSpaces Enabled",
        "--------              ------------- -------",
        "Smarthost To Internet {smtp:*;1}    True",
    ]
    sent = swaks(m.port, "--from", "alice@contoso.test", "--to", "bob@fabrikam.test",
                 "--h-Subject", "Outbound via smart host", "--body", "Line one\nLine two\n")
    assert sent.returncode == 0, sent.output
    queue_id = sent.queued_id
    assert queue_id
    [got] = wait_for(lambda: capture.for_recipient("bob@fabrikam.test"), what="delivery through Postfix")
    assert got.mail_from == "alice@contoso.test"
    msg = got.message
    assert msg["Subject"] == "Outbound via smart host"
    assert got.data.split(b"\r\n\r\n", 1)[1].startswith(b"Line one\r\nLine two\r\n")
    received = got.received()
    # Newest first: Postfix stamped that mailhop (EHLO exch01.contoso.test) handed it over,
    # and below it mailhop's own stamp with the queue id.
    assert len(received) == 2
    assert received[0].startswith("from exch01.contoso.test")
    assert "by relay.contoso.test (Postfix)" in received[0]
    assert "by exch01.contoso.test (mailhop)" in received[1] and f"id {queue_id}" in received[1]
    assert "with ESMTP" in received[1]
    events = [e for e in m.tracking() if e.get("InternalMessageId") == int(queue_id)]
    assert [e["EventId"] for e in events] == ["RECEIVE", "SEND"]
    assert events[1]["ConnectorId"] == "Smarthost To Internet"
    assert events[1]["RecipientStatus"][0].startswith("250")


def test_relay_refused_outside_remote_ip_ranges(mailhop_factory: Callable[..., Mailhop],
                                                postfix_factory: Callable[..., Postfix], capture: Sink) -> None:
    pf = postfix_factory()
    m = mailhop_factory().start()  # remote_ip_ranges = 127.0.0.1/32
    smarthost(m, pf)
    refused = swaks(m.port, "--from", "eve@outside.test", "--to", "bob@fabrikam.test",
                    "--local-interface", "127.0.0.2")
    assert refused.returncode != 0
    assert "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain" in refused.output
    ok = swaks(m.port, "--from", "alice@contoso.test", "--to", "carol@fabrikam.test")
    assert ok.returncode == 0, ok.output
    wait_for(lambda: capture.for_recipient("carol@fabrikam.test"), what="the allowed message")
    assert capture.for_recipient("bob@fabrikam.test") == []
    assert not [e for e in m.tracking() if e.get("Sender") == "eve@outside.test"]


def test_ndr_for_5xx_from_smart_host(mailhop_factory: Callable[..., Mailhop],
                                     postfix_factory: Callable[..., Postfix], capture: Sink) -> None:
    pf = postfix_factory(reject={"gone@fabrikam.test"})
    m = mailhop_factory().start()
    smarthost(m, pf)
    sent = swaks(m.port, "--from", "alice@contoso.test", "--to", "gone@fabrikam.test,bob@fabrikam.test",
                 "--h-Subject", "Budget")
    assert sent.returncode == 0, sent.output
    wait_for(lambda: capture.for_recipient("bob@fabrikam.test"), what="the accepted recipient")
    [ndr] = wait_for(lambda: capture.for_recipient("alice@contoso.test"), what="the NDR")
    assert ndr.mail_from == ""
    assert ndr.message["Subject"] == "Undeliverable: Budget"
    assert ndr.message.get_content_type() == "multipart/report"
    status = delivery_status(ndr)
    assert "Final-Recipient: rfc822; gone@fabrikam.test" in status
    assert "Action: failed" in status and "Status: 5.1.1" in status
    assert "Diagnostic-Code: smtp; 550 5.1.1" in status
    assert "Remote-MTA: dns; 127.0.0.1" in status
    assert "bob@fabrikam.test" not in status
    # The original message travels with the NDR.
    assert b"Subject: Budget" in ndr.data


def test_ndr_for_message_too_large_for_every_connector(mailhop_factory: Callable[..., Mailhop],
                                                       postfix_factory: Callable[..., Postfix], capture: Sink) -> None:
    pf = postfix_factory()
    m = mailhop_factory().start()
    smarthost(m, pf, "Small To Fabrikam", "--max-message-size", "10KB")
    m.cli("connector", "set", "Small To Fabrikam", "--address-spaces", "fabrikam.test")
    smarthost(m, pf, "Home")
    m.cli("connector", "set", "Home", "--address-spaces", "contoso.test")
    m.wait_config(4)  # otherwise Home's first address space, '*', could still carry bob's mail
    body = ("x" * 70 + "\n") * 400  # about 28 KB
    sent = swaks(m.port, "--from", "alice@contoso.test", "--to", "bob@fabrikam.test", "--body", body)
    assert sent.returncode == 0, sent.output
    [ndr] = wait_for(lambda: capture.for_recipient("alice@contoso.test"), what="the size NDR")
    status = delivery_status(ndr)
    assert "Status: 5.3.4" in status
    assert "550 5.3.4 ROUTING.SizeLimit; message size exceeds fixed maximum size for route" in status
    assert capture.for_recipient("bob@fabrikam.test") == []


def test_sender_based_routing_to_two_smart_hosts(mailhop_factory: Callable[..., Mailhop],
                                                 postfix_factory: Callable[..., Postfix], capture: Sink) -> None:
    # The reader's question at the end of the seed: two domains, two smart hosts.
    pf = postfix_factory("relay1.contoso.test", "relay2.fabrikam.test")
    m = mailhop_factory().start()
    m.cli("connector", "new", "Contoso Smarthost", "--dns-routing-enabled", "false", "--smart-hosts",
          f"[127.0.0.1]:{pf.listeners[0].port}", "--address-spaces", "*", "--sender-domains", "contoso.test")
    m.cli("connector", "new", "Fabrikam Smarthost", "--dns-routing-enabled", "false", "--smart-hosts",
          f"[127.0.0.1]:{pf.listeners[1].port}", "--address-spaces", "*", "--sender-domains", "fabrikam.test")
    explained = m.cli_json("route", "explain", "x@example.test", "--sender", "fred@fabrikam.test")
    assert explained["Connector"] == "Fabrikam Smarthost"
    assert swaks(m.port, "--from", "alice@contoso.test", "--to", "one@example.test").returncode == 0
    assert swaks(m.port, "--from", "fred@fabrikam.test", "--to", "two@example.test").returncode == 0
    [one] = wait_for(lambda: capture.for_recipient("one@example.test"), what="contoso mail")
    [two] = wait_for(lambda: capture.for_recipient("two@example.test"), what="fabrikam mail")
    assert "by relay1.contoso.test (Postfix)" in one.received()[0]
    assert "by relay2.fabrikam.test (Postfix)" in two.received()[0]


def test_message_accepted_before_kill_9_is_delivered_after_restart(
        mailhop_factory: Callable[..., Mailhop], capture: Sink) -> None:
    port = free_port()
    m = mailhop_factory().start()
    m.cli("connector", "new", "Relay", "--dns-routing-enabled", "false", "--smart-hosts", f"[127.0.0.1]:{port}",
          "--address-spaces", "*")
    # The smart host is down: the message can only be in the store when mailhop dies.
    sent = swaks(m.port, "--from", "alice@contoso.test", "--to", "bob@fabrikam.test", "--h-Subject", "survivor")
    assert sent.returncode == 0 and sent.queued_id, sent.output
    m.kill()
    relay = Sink(port=port).start()
    try:
        m.start()
        [got] = wait_for(lambda: relay.for_recipient("bob@fabrikam.test"), what="delivery after restart")
        assert got.message["Subject"] == "survivor"
    finally:
        relay.stop()


def test_delivery_in_flight_at_kill_9_is_redelivered(mailhop_factory: Callable[..., Mailhop]) -> None:
    stall = threading.Event()
    stuck = Sink(stall=stall).start()
    m = mailhop_factory().start()
    m.cli("connector", "new", "Relay", "--dns-routing-enabled", "false", "--smart-hosts",
          f"[127.0.0.1]:{stuck.port}", "--address-spaces", "*")
    assert swaks(m.port, "--from", "alice@contoso.test", "--to", "bob@fabrikam.test").returncode == 0
    wait_for(lambda: stuck.handler.helos, what="delivery to start")
    m.kill()  # the smart host never answered the end of DATA
    stuck.stop()
    relay = Sink(port=stuck.port).start()
    try:
        m.start()
        wait_for(lambda: relay.for_recipient("bob@fabrikam.test"), what="redelivery after restart")
    finally:
        relay.stop()


def test_sigterm_drains_and_exits_cleanly(mailhop_factory: Callable[..., Mailhop], capture: Sink) -> None:
    port = free_port()
    m = mailhop_factory().start()
    m.cli("connector", "new", "Relay", "--dns-routing-enabled", "false", "--smart-hosts", f"[127.0.0.1]:{port}",
          "--address-spaces", "*")
    assert swaks(m.port, "--from", "alice@contoso.test", "--to", "bob@fabrikam.test").returncode == 0
    assert m.terminate() == 0
    assert "stopped" in m.log()
    relay = Sink(port=port).start()
    try:
        m.start()
        wait_for(lambda: relay.for_recipient("bob@fabrikam.test"), what="delivery after a clean restart")
    finally:
        relay.stop()


def test_connector_created_from_cli_reaches_running_server(mailhop_factory: Callable[..., Mailhop],
                                                           postfix_factory: Callable[..., Postfix],
                                                           capture: Sink) -> None:
    pf = postfix_factory()
    m = mailhop_factory().start()
    # A fresh install has no send connectors: the message waits in Unreachable.
    assert swaks(m.port, "--from", "alice@contoso.test", "--to", "bob@fabrikam.test").returncode == 0
    explained: dict[str, Any] = m.cli_json("route", "explain", "bob@fabrikam.test")
    assert explained["DeliveryType"] == "Unreachable" and explained["Connector"] is None
    smarthost(m, pf)  # no restart
    wait_for(lambda: capture.for_recipient("bob@fabrikam.test"), what="delivery after the CLI change")


def test_cli_errors_are_one_line_and_change_nothing(mailhop_factory: Callable[..., Mailhop]) -> None:
    m = mailhop_factory()
    bad = [
        (["--smart-hosts", "relay.test", "--address-spaces", "*"], "SmartHosts"),
        (["--dns-routing-enabled", "false", "--address-spaces", "*"], "requires SmartHosts"),
        (["--address-spaces", "*contoso.com"], "'*contoso.com' is not valid"),
        (["--address-spaces", "contoso.com;0"], "outside the allowed range 1-100"),
        (["--address-spaces", "*", "--tls-auth-level", "CertificateValidation"], "RequireTLS"),
        (["--address-spaces", "*", "--require-tls", "true", "--tls-auth-level", "EncryptionOnly",
          "--tls-domain", "x.test"], "DomainValidation"),
        (["--address-spaces", "*", "--usage", "outbound"], "Usage"),
    ]
    for args, text in bad:
        result = m.cli("connector", "new", "Broken", *args, check=False)
        assert result.returncode == 1, args
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mailhop: ") and text in lines[0], (args, result.stderr)
    m.cli("connector", "new", "To Internet", "--address-spaces", "*")
    dup = m.cli("connector", "new", "To Internet", "--address-spaces", "*", check=False)
    assert dup.returncode == 1 and "already exists" in dup.stderr
    assert [c["Identity"] for c in m.cli_json("connector", "list")] == ["To Internet"]
