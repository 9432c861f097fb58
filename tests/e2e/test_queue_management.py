"""Seeing and steering queued mail from the CLI while ``mailhop serve`` runs (no restart)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from tests.support.mailhop import Mailhop
from tests.support.net import free_port
from tests.support.sink import Sink
from tests.support.smtp import swaks
from tests.support.wait import wait_for


def queue(m: Mailhop, name: str) -> dict[str, Any] | None:
    return next((q for q in m.cli_json("queue", "list") if q["Identity"] == name), None)


def send(m: Mailhop, to: str, subject: str = "test") -> str:
    result = swaks(m.port, "--from", "alice@contoso.test", "--to", to, "--h-Subject", subject)
    assert result.returncode == 0 and result.queued_id, result.output
    return result.queued_id


def test_suspend_resume_retry_and_remove(mailhop_factory: Callable[..., Mailhop]) -> None:
    port = free_port()
    m = mailhop_factory(queue={"glitch_retry_interval": "1h", "transient_retry_interval": "1h",
                               "message_retry_interval": "1h"}).start()
    m.cli("connector", "new", "Relay", "--dns-routing-enabled", "false", "--smart-hosts", f"[127.0.0.1]:{port}",
          "--address-spaces", "*")
    m.wait_config(1)
    first = send(m, "bob@fabrikam.test", "first")
    relay = wait_for(lambda: (q := queue(m, "Relay")) and q["Status"] == "Retry" and q, what="Relay in Retry")
    assert relay["DeliveryType"] == "SmartHostConnectorDelivery"
    assert relay["MessageCount"] == 1 and relay["NextHopDomain"] == f"[127.0.0.1]:{port}"
    assert relay["LastError"].startswith("441 4.4.1") and relay["NextRetryTime"]
    [msg] = m.cli_json("queue", "messages", "--queue", "EXCH01\\Relay")
    assert msg["Identity"] == int(first) and msg["Status"] == "Retry" and msg["Subject"] == "first"
    assert msg["Recipients"][0]["Address"] == "bob@fabrikam.test"

    # The next hop comes back, but the queue is suspended: nothing leaves.
    assert m.cli("queue", "suspend", "Relay").stdout.strip() == "Queue 'Relay' suspended."
    assert queue(m, "Relay")["Status"] == "Suspended"  # type: ignore[index]
    sink = Sink(port=port).start()
    try:
        m.cli("queue", "retry", "Relay")
        time.sleep(2)  # several polls of the server (0.5 s): a suspended queue must not deliver
        assert sink.messages == []
        # Resume and retry now (the retry interval is an hour): it is delivered.
        m.cli("queue", "resume", "Relay")
        m.cli("queue", "retry", "Relay")
        wait_for(lambda: sink.for_recipient("bob@fabrikam.test"), what="delivery after resume")
        wait_for(lambda: (q := queue(m, "Relay")) is None or q["MessageCount"] == 0, what="queue drained")

        # One message suspended: its queue keeps flowing, the message waits.
        m.cli("connector", "set", "Relay", "--address-spaces", "fabrikam.test")
        m.wait_config(2)
        held = send(m, "held@nowhere.test", "held")  # no connector: Unreachable
        wait_for(lambda: queue(m, "Unreachable")["MessageCount"] == 1, what="Unreachable")  # type: ignore[index]
        assert m.cli("queue", "suspend", "--message", held).stdout.strip() == f"Message {held}: 1 recipient(s) suspended."
        [shown] = m.cli_json("queue", "messages", "--queue", "Unreachable")
        assert shown["Status"] == "Suspended"
        m.cli("queue", "resume", "--message", held)
        [shown] = m.cli_json("queue", "messages", "--queue", "Unreachable")
        assert shown["Status"] != "Suspended"

        # Remove with an NDR: the sender hears "deleted by administrative action".
        m.cli("connector", "new", "Home", "--dns-routing-enabled", "false", "--smart-hosts", f"[127.0.0.1]:{port}",
              "--address-spaces", "contoso.test")
        removed = m.cli_json("queue", "remove", "--message", held, "--ndr")
        assert removed == {"Identity": int(held), "Removed": ["held@nowhere.test"], "NdrSent": True}
        [ndr] = wait_for(lambda: sink.for_recipient("alice@contoso.test"), what="removal NDR")
        assert b"550 4.3.2 QUEUE.Admin; message deleted by administrative action" in ndr.data
        assert m.cli_json("queue", "messages") == []

        # Remove without an NDR: silence.
        quiet = send(m, "quiet@nowhere.test", "quiet")
        m.cli("queue", "remove", "--message", quiet)
        assert len(sink.for_recipient("alice@contoso.test")) == 1
        gone = m.cli("queue", "remove", "--message", quiet, check=False)
        assert gone.returncode == 1 and "was not found" in gone.stderr
        unknown = m.cli("queue", "retry", "No Such Queue", check=False)
        assert unknown.returncode == 1 and unknown.stderr == "mailhop: The queue 'No Such Queue' was not found\n"
    finally:
        sink.stop()


def test_message_that_crashes_the_server_twice_while_alone_goes_to_poison(
        mailhop_factory: Callable[..., Mailhop]) -> None:
    stall = threading.Event()
    stuck = Sink(stall=stall).start()
    m = mailhop_factory().start()
    m.cli("connector", "new", "Relay", "--dns-routing-enabled", "false", "--smart-hosts",
          f"[127.0.0.1]:{stuck.port}", "--address-spaces", "*")
    mid = send(m, "bob@fabrikam.test", "poison")
    # The first crash makes it a suspect; the next two happen while it is handled alone.
    for crash in (1, 2, 3):
        wait_for(lambda crash=crash: len(stuck.handler.helos) >= crash, what=f"handling #{crash}")
        m.kill()
        m.start()
    poison = wait_for(lambda: queue(m, "Poison"), what="the Poison queue")
    assert poison["MessageCount"] == 1
    [msg] = m.cli_json("queue", "messages", "--queue", "Poison")
    assert msg["Identity"] == int(mid) and msg["Status"] == "Suspended"
    assert any(e["EventId"] == "POISONMESSAGE" and e["InternalMessageId"] == int(mid) for e in m.tracking())
    # A poison message is never retried on its own ...
    assert len(stuck.handler.helos) == 3
    stuck.stop()
    relay = Sink(port=stuck.port).start()
    try:
        # ... until an administrator resumes it.
        m.cli("queue", "resume", "--message", mid)
        wait_for(lambda: relay.for_recipient("bob@fabrikam.test"), what="delivery after resuming the poison message")
    finally:
        relay.stop()


def test_track_follows_a_message(mailhop_factory: Callable[..., Mailhop], capture: Sink) -> None:
    m = mailhop_factory().start()
    m.cli("connector", "new", "Relay", "--dns-routing-enabled", "false", "--smart-hosts",
          f"[127.0.0.1]:{capture.port}", "--address-spaces", "*", "--protocol-logging-level", "verbose")
    m.wait_config(1)
    result = swaks(m.port, "--from", "alice@contoso.test", "--to", "bob@fabrikam.test",
                   "--header", "Message-Id: <tracked-1@contoso.test>", "--h-Subject", "Tracked")
    assert result.returncode == 0
    wait_for(lambda: capture.messages, what="delivery")
    events = wait_for(lambda: (e := m.cli_json("track", "--message-id", "tracked-1@contoso.test"))
                      and len(e) >= 2 and e, what="RECEIVE and SEND")
    assert [e["EventId"] for e in events] == ["RECEIVE", "SEND"]
    send_event = events[1]
    assert send_event["ConnectorId"] == "Relay" and send_event["Recipients"] == ["bob@fabrikam.test"]
    assert send_event["RecipientStatus"][0].startswith("250")
    assert send_event["MessageSubject"] == "Tracked" and send_event["Sender"] == "alice@contoso.test"
    assert [e["EventId"] for e in m.cli_json("track", "--event", "SEND", "--recipient", "bob@fabrikam.test")] == ["SEND"]
    assert m.cli_json("track", "--sender", "nobody@contoso.test") == []
    assert m.cli_json("track", "--start", "2999-01-01") == []
    assert len(m.cli_json("track", "--start", "1h", "--sender", "alice@contoso.test")) == 2
    table = m.cli("track", "--message-id", "<tracked-1@contoso.test>").stdout.splitlines()
    assert table[0].split() == ["Timestamp", "EventId", "Source", "Sender", "Recipients", "MessageSubject"]
    bad = m.cli("track", "--start", "yesterday-ish", check=False)
    assert bad.returncode == 1 and "is not a time" in bad.stderr
    # Verbose protocol logging wrote the SMTP conversation of the send.
    logs = list((m.data_dir / "logs" / "ProtocolLog" / "SmtpSend").glob("SEND*.log"))
    text = "".join(p.read_text() for p in logs)
    assert "#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context" in text
    assert ",Relay," in text and ">,MAIL FROM:<alice@contoso.test>" in text and ",<,250" in text
