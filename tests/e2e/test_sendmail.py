"""``mailhop sendmail`` as applications call it: against a running server, and with none.

Each test runs the real command (a subprocess, the message on its standard input) against a
``mailhop serve`` subprocess whose connector relays to an aiosmtpd sink.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from tests.support.mailhop import MAILHOP, Mailhop
from tests.support.sink import Sink
from tests.support.wait import wait_for


def sendmail(m: Mailhop, *args: str, message: bytes) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MAILHOP, "--config", str(m.config_path), "sendmail", *args], input=message.decode(),
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def relay(mailhop_factory: Callable[..., Mailhop], capture: Sink) -> Mailhop:
    m = mailhop_factory()
    m.relay(capture.port)
    return m


def test_t_takes_recipients_from_the_header_and_removes_bcc(relay: Mailhop, capture: Sink) -> None:
    relay.start()
    message = (b"From: cron@contoso.test\nTo: Bob <bob@fabrikam.test>\nCc: carol@fabrikam.test\n"
               b"Bcc: audit@contoso.test,\n  archive@contoso.test\nSubject: nightly report\n\n.\nThe body, with a lone dot above.\n")
    done = sendmail(relay, "-t", "-i", "-odi", "-oem", "-v", message=message)
    assert done.returncode == 0, done.stderr
    assert "queued as" in done.stderr
    wait_for(lambda: len(capture.messages) == 1, what="the message at the next hop")
    [got] = capture.messages
    assert sorted(got.rcpt_tos) == ["archive@contoso.test", "audit@contoso.test", "bob@fabrikam.test",
                                    "carol@fabrikam.test"]
    assert b"audit@" not in got.data.split(b"\r\n\r\n")[0] and b"archive@" not in got.data
    assert got.message["Subject"] == "nightly report" and b"\r\n.\r\nThe body" in got.data.replace(b"\r\n..", b"\r\n.")
    assert "with local" in got.message["Received"]
    [receive] = [e for e in relay.tracking() if e["EventId"] == "RECEIVE"]
    assert (receive["Source"], receive["ConnectorId"]) == ("PICKUP", "Pickup")


def test_arguments_f_and_F_and_a_lone_dot_ends_the_message_without_i(relay: Mailhop, capture: Sink) -> None:
    relay.start()
    done = sendmail(relay, "-f", "app@contoso.test", "-F", "The App", "--", "bob@fabrikam.test",
                    message=b"Subject: hi\n\nfirst line\n.\nnot part of the message\n")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: len(capture.messages) == 1, what="the message at the next hop")
    [got] = capture.messages
    assert (got.mail_from, got.rcpt_tos) == ("app@contoso.test", ["bob@fabrikam.test"])
    assert got.message["From"] == "The App <app@contoso.test>"
    assert b"first line" in got.data and b"not part" not in got.data


@pytest.mark.parametrize(("args", "message", "code", "text"), [
    (["-bs"], b"Subject: x\n\nx\n", 64, "unknown option -bs"),
    (["-t"], b"Subject: nobody\n\nx\n", 64, "no recipients"),
    (["bob@"], b"Subject: x\n\nx\n", 65, "'bob@' is not an e-mail address"),
    (["-f"], b"", 64, "option -f needs a value"),
    (["bob@fabrikam.test"], b"", 65, "the message is empty"),
])
def test_bad_use_is_one_line_and_a_sysexits_status(relay: Mailhop, args: list[str], message: bytes, code: int,
                                                   text: str) -> None:
    relay.start()
    done = sendmail(relay, *args, message=message)
    assert done.returncode == code, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and text in done.stderr, done.stderr
    assert relay.cli_json("queue", "messages") == []


def test_with_no_server_running_the_message_waits_in_the_store_and_leaves_when_one_starts(
        relay: Mailhop, capture: Sink) -> None:
    big = b"Subject: large and patient\n\n" + b"x" * 998 + b"\n"
    big += (b"y" * 76 + b"\n") * 40_000  # 3 MB: more than a control-socket line could hold before
    done = sendmail(relay, "bob@fabrikam.test", message=big)
    assert done.returncode == 0, done.stderr
    [queued] = relay.cli_json("queue", "messages")
    assert queued["Subject"] == "large and patient"
    relay.start()
    wait_for(lambda: len(capture.messages) >= 1, what="the message sent once a server runs")
    assert len(capture.messages) == 1, [m.message["Subject"] for m in capture.messages]
    assert capture.messages[0].message["Subject"] == "large and patient"
    # And through the running server, the same size.
    done = sendmail(relay, "carol@fabrikam.test", message=big)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: len(capture.messages) == 2, what="the second one")
    assert len(capture.messages[1].data) > 3_000_000
