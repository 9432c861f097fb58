"""Everything under the data directory is its user's alone: directories 0700, files 0600.

The data directory holds all queued mail, the store with the connectors' (sealed) secrets,
the logs and the key file; the server must not leave any of them readable by other local
users, whatever the umask it was started with.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailhop.private import problems
from tests.support.client import submit
from tests.support.sink import Sink
from tests.support.wait import async_wait_for


@pytest.fixture
def lax_umask() -> Iterator[None]:
    old = os.umask(0o022)  # what a shell usually gives: files 0644, directories 0755
    yield
    os.umask(old)


async def test_a_running_server_creates_nothing_others_may_read(transport_factory: Any, sink: Sink,
                                                               lax_umask: None) -> None:
    t = await transport_factory(tracking={"enabled": True}, receive_connectors=[{
        "name": "Verbose", "bind": "127.0.0.1:0", "protocol_logging_level": "Verbose"}])
    await t.connector(Name="Relay", DNSRoutingEnabled="false", SmartHosts=f"[127.0.0.1]:{sink.port}",
                      AddressSpaces="*", ProtocolLoggingLevel="Verbose")
    big = b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 6000  # over 256 KiB: spooled to a file
    await submit(t.port, "alice@contoso.test", ["bob@fabrikam.test"], big)
    await async_wait_for(lambda: sink.messages, what="delivery")
    t.service.tracking.flush()
    for plog in t.service.logs:
        plog.flush()
    assert_private(t.service.settings.data_dir)


def assert_private(data_dir: Path) -> None:
    made = list(data_dir.rglob("*"))
    names = {p.name for p in made}
    assert {"mailhop.db", "mailhop.db-wal", "control.sock", "MessageTracking", "SmtpSend", "SmtpReceive"} <= names
    assert any(p.name.startswith("inflight-") for p in made)
    assert problems(data_dir) == []
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
