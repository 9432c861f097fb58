"""State-changing commands act through the running server (its control socket), or on the store
when no server runs; only the process that acted writes the tracking log and composes NDRs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Callable
from typing import Any

from tests.support.mailhop import MAILHOP, Mailhop
from tests.support.net import free_port
from tests.support.sink import Sink
from tests.support.smtp import swaks
from tests.support.wait import wait_for


def held_message(m: Mailhop, to: str) -> str:
    """A message waiting in Unreachable (no connector matches its recipient)."""
    result = swaks(m.port, "--from", "alice@contoso.test", "--to", to)
    assert result.returncode == 0 and result.queued_id, result.output
    wait_for(lambda: any(q["Identity"] == "Unreachable" and q["MessageCount"] for q in m.cli_json("queue", "list")),
             what="the message in Unreachable")
    return result.queued_id


def with_home(m: Mailhop, sink: Sink) -> Mailhop:
    """A running server whose mail to contoso.test (the sender's NDRs) goes to ``sink``."""
    m.start()
    m.cli("connector", "new", "Home", "--dns-routing-enabled", "false", "--smart-hosts",
          f"[127.0.0.1]:{sink.port}", "--address-spaces", "contoso.test")
    m.wait_config(1)
    return m


def events(m: Mailhop, message_id: str, event: str) -> list[dict[str, Any]]:
    return [e for e in m.tracking() if str(e.get("InternalMessageId")) == message_id and e["EventId"] == event]


def test_remove_with_ndr_is_carried_out_by_the_running_server(mailhop_factory: Callable[..., Mailhop]) -> None:
    sink = Sink(port=free_port()).start()
    m = with_home(mailhop_factory(), sink)
    try:
        control = m.data_dir / "control.sock"
        assert stat.S_ISSOCK(control.stat().st_mode) and stat.S_IMODE(control.stat().st_mode) == 0o600
        held = held_message(m, "held@nowhere.test")
        removed = m.cli_json("queue", "remove", "--message", held, "--ndr")
        assert removed == {"Identity": int(held), "Removed": ["held@nowhere.test"], "NdrSent": True}
        [ndr] = wait_for(lambda: sink.for_recipient("alice@contoso.test"), what="the removal NDR")
        assert b"550 4.3.2 QUEUE.Admin" in ndr.data
        assert m.proc is not None
        [fail] = wait_for(lambda: events(m, held, "FAIL"), what="the FAIL event")
        [dsn] = events(m, held, "DSN")
        # Composed by the server: its events name the server's worker, not a CLI process.
        for event in (fail, dsn):
            assert event["SourceContext"].startswith("EXCH01/0/"), event
        # A refusal comes back from the server as the CLI's one line and status 1.
        gone = m.cli("queue", "remove", "--message", held, check=False)
        assert gone.returncode == 1 and gone.stderr == f"mailhop: The message {held} was not found in any queue\n"
    finally:
        sink.stop()
        m.stop()


def test_with_no_server_running_the_cli_acts_on_the_store(mailhop_factory: Callable[..., Mailhop]) -> None:
    sink = Sink(port=free_port()).start()
    m = with_home(mailhop_factory(), sink)
    try:
        held = held_message(m, "held@nowhere.test")
        assert m.terminate() == 0
        assert not (m.data_dir / "control.sock").exists()
        result = subprocess.run([MAILHOP, "--config", str(m.config_path), "queue", "remove", "--message", held,
                                 "--ndr", "--json"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["NdrSent"] is True
        [fail] = events(m, held, "FAIL")
        assert fail["SourceContext"] == f"EXCH01/cli/{_pid_of(fail)}"
        assert sink.for_recipient("alice@contoso.test") == []  # queued; the next server run delivers it
        m.start()
        [ndr] = wait_for(lambda: sink.for_recipient("alice@contoso.test"), what="the NDR after a restart")
        assert b"550 4.3.2 QUEUE.Admin" in ndr.data
    finally:
        sink.stop()
        m.stop()


def _pid_of(event: dict[str, Any]) -> str:
    pid = str(event["SourceContext"]).rsplit("/", 1)[-1]
    assert pid.isdigit() and int(pid) != os.getpid()
    return pid


def test_a_stored_connector_that_no_longer_validates_is_quarantined(mailhop_factory: Callable[..., Mailhop]) -> None:
    import sqlite3

    sink = Sink(port=free_port()).start()
    m = mailhop_factory().start()
    try:
        m.cli("connector", "new", "Good", "--dns-routing-enabled", "false", "--smart-hosts",
              f"[127.0.0.1]:{sink.port}", "--address-spaces", "*")
        m.wait_config(1)
        # What a tightened rule in a later release (or a hand edit) leaves behind: DNS routing with smart hosts.
        bad = json.dumps({"Name": "Bad", "AddressSpaces": ["smtp:fabrikam.test;1"], "SmartHosts": ["relay.test"],
                          "DNSRoutingEnabled": True, "SourceTransportServers": ["EXCH01"]})
        with sqlite3.connect(m.data_dir / "mailhop.db") as db:
            db.execute("INSERT INTO send_connectors (guid, name, data, secret, changed_at) VALUES (?,?,?,?,?)",
                       ("guid-bad", "Bad", bad, None, 0))
            db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'config_version'")
        m.wait_config(2)
        listed = m.cli("connector", "list").stdout
        assert "Good" in listed and "Quarantined: 'Bad': SmartHosts" in listed, listed
        [entry] = [c for c in m.cli_json("connector", "list") if c["Identity"] == "Bad"]
        assert entry["Quarantined"] is True and "DNSRoutingEnabled" in entry["QuarantineReason"]
        shown = m.cli("connector", "show", "Bad", check=False)
        assert shown.returncode == 1 and "is quarantined" in shown.stderr
        # Routing skips it (its address space would win for fabrikam.test); everything else flows.
        result = swaks(m.port, "--from", "alice@contoso.test", "--to", "bob@fabrikam.test")
        assert result.returncode == 0, result.output
        wait_for(lambda: sink.for_recipient("bob@fabrikam.test"), what="delivery through Good")
        assert m.log().count("send connector 'Bad' is quarantined") == 1
        # Removing it works like for any connector.
        assert m.cli("connector", "remove", "Bad").stdout.strip() == "Removed send connector 'Bad'."
    finally:
        sink.stop()
        m.stop()
