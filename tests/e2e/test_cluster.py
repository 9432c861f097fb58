"""Several transport servers on one PostgreSQL store (the seed's EXCH01,EXCH02 source servers).

Three ``mailhop serve`` processes share a real PostgreSQL; a connector lists EXCH01
and EXCH02 as source servers; mail is submitted to EXCH03.  The receiver tells which
server delivered each message by its EHLO name.
"""

from __future__ import annotations

import smtplib
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.mailhop import Mailhop
from tests.support.net import free_port
from tests.support.pg import PostgresServer
from tests.support.sink import Sink
from tests.support.smtp import swaks
from tests.support.wait import wait_for

FAST = {"lease_timeout": "3s", "heartbeat_interval": "0.5s"}


@pytest.fixture
def cluster(mailhop_factory: Callable[..., Mailhop], postgres_server: PostgresServer) -> Callable[..., list[Mailhop]]:
    url = postgres_server.database()

    def start(*names: str) -> list[Mailhop]:
        return [mailhop_factory(name, server={"store": url}, cluster=FAST).start() for name in names]

    return start


def submit_many(m: Mailhop, count: int, prefix: str) -> list[str]:
    ids = []
    with smtplib.SMTP("127.0.0.1", m.port) as smtp:
        for i in range(count):
            mid = f"<{prefix}-{i}@contoso.test>"
            body = f"From: alice@contoso.test\r\nTo: bob@fabrikam.test\r\nMessage-ID: {mid}\r\nSubject: {i}\r\n\r\nhi\r\n"
            smtp.sendmail("alice@contoso.test", [f"user{i}@fabrikam.test"], body)
            ids.append(mid)
    return ids


def message_ids(sink: Sink) -> Counter[str]:
    return Counter(str(m.message["Message-ID"]) for m in sink.messages)


def test_source_servers_deliver_mail_accepted_elsewhere(cluster: Callable[..., list[Mailhop]], capture: Sink) -> None:
    exch01, exch02, exch03 = cluster("EXCH01", "EXCH02", "EXCH03")
    exch03.cli("connector", "new", "To Internet", "--usage", "internet", "--dns-routing-enabled", "false",
               "--smart-hosts", f"[127.0.0.1]:{capture.port}", "--address-spaces", "*",
               "--source-transport-servers", "EXCH01,EXCH02")
    # Every server sees the connector (one store); the decision depends on who asks.
    assert exch03.cli_json("route", "explain", "bob@fabrikam.test")["DeliveryType"] == "SmtpRelayToConnectorSourceServers"
    assert exch01.cli_json("route", "explain", "bob@fabrikam.test")["DeliveryType"] == "SmartHostConnectorDelivery"
    for m in (exch01, exch02, exch03):
        m.wait_config(1)
    wait_for(lambda: {s["Name"]: s["State"] for s in exch03.cli_json("server", "list")}
             == {"EXCH01": "Active", "EXCH02": "Active", "EXCH03": "Active"}, what="three live servers")
    ids = submit_many(exch03, 60, "spread")
    wait_for(lambda: set(message_ids(capture)) >= set(ids), what="all 60 delivered")
    helos = Counter(m.helo for m in capture.messages)
    assert set(helos) == {"exch01.contoso.test", "exch02.contoso.test"}, helos  # never EXCH03, and both work
    assert max(message_ids(capture).values()) == 1  # no failure, no duplicate


def test_dead_server_strands_no_mail(cluster: Callable[..., list[Mailhop]]) -> None:
    stall = threading.Event()
    slow = Sink(stall=stall).start()
    port = slow.port
    exch01, exch02, exch03 = cluster("EXCH01", "EXCH02", "EXCH03")
    exch03.cli("connector", "new", "To Internet", "--dns-routing-enabled", "false", "--smart-hosts",
               f"[127.0.0.1]:{port}", "--address-spaces", "*", "--source-transport-servers", "EXCH01,EXCH02")
    for m in (exch01, exch02, exch03):
        m.wait_config(1)
    assert swaks(exch03.port, "--from", "alice@contoso.test", "--to", "slow@fabrikam.test").returncode == 0
    [holder_helo] = wait_for(lambda: slow.handler.helos, what="a source server to start the slow delivery")
    holder = exch01 if holder_helo.startswith("exch01") else exch02
    survivor = exch02 if holder is exch01 else exch01
    holder.kill()  # the machine is gone, mid-delivery
    slow.stop()
    good = Sink(port=port).start()
    try:
        # More mail keeps arriving while the holder is dead.
        ids = submit_many(exch03, 20, "after-crash")
        wait_for(lambda: set(message_ids(good)) >= set(ids), what="the new mail delivered")
        wait_for(lambda: good.for_recipient("slow@fabrikam.test"), what="the dead server's mail delivered")
        assert {m.helo for m in good.messages} == {f"{survivor.root.name.split('-')[1].lower()}.contoso.test"}
        assert len(good.for_recipient("slow@fabrikam.test")) == 1  # the stalled attempt never completed
        states = {s["Name"]: s["State"] for s in exch03.cli_json("server", "list")}
        assert states[holder.root.name.split("-")[1]] == "Unreachable"
        events = [e for e in survivor.tracking() if e["EventId"] == "SEND" and e["Recipients"] == ["slow@fabrikam.test"]]
        assert len(events) == 1
    finally:
        good.stop()


def test_kill_under_load_loses_nothing(cluster: Callable[..., list[Mailhop]], capture: Sink) -> None:
    exch01, exch02, exch03 = cluster("EXCH01", "EXCH02", "EXCH03")
    exch03.cli("connector", "new", "To Internet", "--dns-routing-enabled", "false", "--smart-hosts",
               f"[127.0.0.1]:{capture.port}", "--address-spaces", "*", "--source-transport-servers", "EXCH01,EXCH02")
    for m in (exch01, exch02, exch03):
        m.wait_config(1)
    first = submit_many(exch03, 40, "load-a")
    wait_for(lambda: len(capture.messages) >= 5, what="deliveries under way")
    exch01.kill()
    second = submit_many(exch03, 40, "load-b")
    wait_for(lambda: set(message_ids(capture)) >= set(first + second), what="all 80 delivered")
    duplicates = sum(n - 1 for n in message_ids(capture).values())
    # At least once: a duplicate is possible only for a delivery in flight at the kill
    # (at most EXCH01's connections, 20 by default).
    assert duplicates <= 20


def test_drain_moves_work_to_the_other_servers(cluster: Callable[..., list[Mailhop]], capture: Sink) -> None:
    exch01, _exch02, exch03 = cluster("EXCH01", "EXCH02", "EXCH03")
    exch03.cli("connector", "new", "To Internet", "--dns-routing-enabled", "false", "--smart-hosts",
               f"[127.0.0.1]:{capture.port}", "--address-spaces", "*", "--source-transport-servers", "EXCH01,EXCH02")
    assert exch03.cli("server", "drain", "EXCH01").returncode == 0
    wait_for(lambda: next(s for s in exch03.cli_json("server", "list") if s["Name"] == "EXCH01")["State"] == "Draining",
             what="EXCH01 draining")
    refused = swaks(exch01.port, "--from", "alice@contoso.test", "--to", "bob@fabrikam.test")
    assert refused.returncode != 0 and "421 4.3.2" in refused.output
    ids = submit_many(exch03, 20, "drained")
    wait_for(lambda: set(message_ids(capture)) >= set(ids), what="delivery by the others")
    assert {m.helo for m in capture.messages} == {"exch02.contoso.test"}
    exch03.cli("server", "resume", "EXCH01")
    wait_for(lambda: next(s for s in exch03.cli_json("server", "list") if s["Name"] == "EXCH01")["State"] == "Active",
             what="EXCH01 active again")
    assert swaks(exch01.port, "--from", "alice@contoso.test", "--to", "carol@fabrikam.test").returncode == 0
    unknown = exch03.cli("server", "drain", "EXCH09", check=False)
    assert unknown.returncode == 1 and "never run" in unknown.stderr


def test_migrate_from_sqlite_to_postgresql(mailhop_factory: Callable[..., Mailhop],
                                           postgres_server: PostgresServer) -> None:
    port = free_port()
    single = mailhop_factory("EXCH01").start()
    single.cli("connector", "new", "Relay", "--dns-routing-enabled", "false", "--smart-hosts", f"[127.0.0.1]:{port}",
               "--address-spaces", "*", "--smart-host-auth-mechanism", "None")
    for i in range(3):
        assert swaks(single.port, "--from", "alice@contoso.test", "--to", f"r{i}@fabrikam.test").returncode == 0
    assert single.terminate() == 0
    url = postgres_server.database()
    result: dict[str, Any] = single.cli_json("db", "migrate", "--from", f"sqlite:{single.data_dir / 'mailhop.db'}",
                                             "--to", url)
    assert result == {"Connectors": 1, "DkimSigningConfigs": 0, "QueueStates": result["QueueStates"], "Messages": 3}
    again = single.cli("db", "migrate", "--from", f"sqlite:{single.data_dir / 'mailhop.db'}", "--to", url, check=False)
    assert again.returncode == 1 and "not empty" in again.stderr
    moved = mailhop_factory("EXCH01", server={"store": url}).start()
    assert [c["Identity"] for c in moved.cli_json("connector", "list")] == ["Relay"]
    relay = Sink(port=port).start()
    try:
        moved.cli("queue", "retry", "Relay")
        wait_for(lambda: len(relay.messages) == 3, what="the migrated mail delivered")
    finally:
        relay.stop()
