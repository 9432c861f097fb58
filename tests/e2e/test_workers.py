"""``[server] workers = 2``: two worker processes share the listening socket and the store.

The kernel spreads connections over the workers (SO_REUSEPORT); each worker writes the
same SQLite file (its writer threads take turns through a kernel lock) and appends to
the same tracking log. A worker killed with -9 is started again by the parent, and the
mail it held is delivered by its next incarnation.
"""

from __future__ import annotations

import os
import signal
import smtplib
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.support.mailhop import Mailhop
from tests.support.sink import Sink
from tests.support.wait import wait_for

WORKER_TAG_BITS = 0xF  # the low bits of an internal message id name the worker that took it


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def submit(port: int, count: int, prefix: str) -> list[str]:
    """``count`` messages, one SMTP session each, 10 sessions at a time; the recipients."""
    def one(i: int) -> str:
        to = f"{prefix}{i}@fabrikam.test"
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.sendmail("alice@contoso.test", [to], f"Subject: {prefix} {i}\r\n\r\nbody {i}\r\n")
        return to

    with ThreadPoolExecutor(10) as pool:
        return list(pool.map(one, range(count)))


def test_two_workers_share_the_listener_the_store_and_the_tracking_log(
        mailhop_factory: Callable[..., Mailhop], capture: Sink) -> None:
    m = mailhop_factory(server={"workers": 2}).start()
    wait_for(lambda: len(children(m.proc.pid)) == 2, what="two worker processes")  # type: ignore[union-attr]
    m.relay(capture.port)
    wait_for(lambda: m.log().count("(version 1)") == 2, what="both workers to load the connector")
    sent = submit(m.port, 60, "w")
    wait_for(lambda: len(capture.messages) >= 60, what="60 deliveries")
    delivered = Counter(r for c in capture.messages for r in c.rcpt_tos)
    assert delivered == Counter(sent)  # each exactly once
    events = m.tracking()  # one JSON object per line: the workers' appends never interleave
    received = [e for e in events if e["EventId"] == "RECEIVE"]
    assert len(received) == 60
    assert {int(e["InternalMessageId"]) & WORKER_TAG_BITS for e in received} == {0, 1}
    assert len([e for e in events if e["EventId"] == "SEND"]) == 60
    assert m.terminate() == 0


def test_a_killed_worker_comes_back_and_its_mail_is_delivered(
        mailhop_factory: Callable[..., Mailhop]) -> None:
    stall = threading.Event()
    sink = Sink(stall=stall).start()
    try:
        m = mailhop_factory(server={"workers": 2}, cluster={"lease_timeout": "60s"}).start()
        wait_for(lambda: len(children(m.proc.pid)) == 2, what="two worker processes")  # type: ignore[union-attr]
        m.relay(sink.port)
        wait_for(lambda: m.log().count("(version 1)") == 2, what="both workers to load the connector")
        sent = submit(m.port, 20, "k")
        # Every message is in flight: the sink holds each delivery in DATA.
        wait_for(lambda: sum(q["MessageCount"] for q in m.cli_json("queue", "list")
                             if q["Identity"] == "Relay") == 20, what="20 messages in the Relay queue")
        before = children(m.proc.pid)  # type: ignore[union-attr]
        os.kill(before[0], signal.SIGKILL)
        wait_for(lambda: len(set(children(m.proc.pid)) - set(before)) == 1,  # type: ignore[union-attr]
                 what="the parent to start the killed worker again")
        assert "exited with -9; starting it again" in m.log()
        stall.set()
        # Far less than the lease timeout: the new incarnation frees its predecessor's leases at once.
        wait_for(lambda: set(sent) <= {r for c in sink.messages for r in c.rcpt_tos}, timeout=30,
                 what="every message delivered")
        wait_for(lambda: m.cli_json("queue", "messages") == [], what="empty queues")
        delivered = Counter(r for c in sink.messages for r in c.rcpt_tos)
        duplicates = sum(n - 1 for n in delivered.values())
        assert duplicates <= 20  # at most the deliveries the killed worker had in flight
        assert m.terminate() == 0
    finally:
        sink.stop()


def test_the_default_runs_a_worker_per_cpu_and_outbound_limits_hold_for_the_whole_server(
        mailhop_factory: Callable[..., Mailhop]) -> None:
    """``workers = "auto"`` (the default; the suite's helper pins 1 elsewhere) and
    ``max_per_domain_outbound_connections = 2``: however many workers, at most 2 connections to
    the destination at once (each worker used to have the whole limit: 4 with two workers)."""
    from mailhop.config.sections import cpus

    stall = threading.Event()
    sink = Sink(stall=stall).start()
    m = mailhop_factory(server={"workers": "auto"}, delivery={"max_per_domain_outbound_connections": 2}).start()
    try:
        expected = min(cpus(), 64)
        wait_for(lambda: len(children(m.proc.pid)) == expected, what=f"{expected} worker processes")  # type: ignore[union-attr]
        m.relay(sink.port)
        wait_for(lambda: m.log().count("(version 1)") == expected, what="every worker to load the connector")
        sent = submit(m.port, 20, "limit")
        helos = sink.handler.helos
        wait_for(lambda: len(helos) >= min(2, expected), what="deliveries under way")
        time.sleep(2)  # what more connections could open, has opened
        assert len(helos) <= 2, f"{len(helos)} connections at once to one destination (limit 2)"
        stall.set()
        wait_for(lambda: len(sink.messages) >= 20, what="all 20 delivered once released")
        assert Counter(r for c in sink.messages for r in c.rcpt_tos) == Counter(sent)
    finally:
        stall.set()
        sink.stop()
