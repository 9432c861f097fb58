"""Scripted SMTP dialogues against the receive side, one file each (as chasquid's tests are).

Each ``*.dialogue`` file in this folder is a conversation with a receive connector as
``mailhop serve`` builds it (the state machine, the receive policy, the spool and the
submission, on the in-memory store), over a real loopback socket.  Lines:

``# ...``            a comment; the first one says what the dialogue shows
``c: TEXT``          the client sends TEXT and CRLF
``c! TEXT``          the client sends TEXT as it is (no CRLF added)
``s: PATTERN``       the next reply line matches PATTERN (``*`` any text, the rest literal)
``s+: PATTERN``      reply lines are skipped up to a final one (``NNN `` or ``NNN``) matching PATTERN
``tls:``             the client does the TLS handshake
``closed:``          the server has closed the connection (nothing more to read)
``stored: N``        N messages are in the store now
``body: TEXT``       the body of the message stored last contains TEXT

TEXT may hold ``\\r``, ``\\n``, ``\\t``, ``\\xNN`` and ``{N*X}`` (X repeated N times).  Every 4xx
and 5xx reply must carry an enhanced status code (the raw client checks each one).
"""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailhop.config import ReceiveConnectorSettings, from_mapping
from mailhop.model.ids import IdGenerator
from mailhop.queue.context import Live, QueueContext, Snapshot
from mailhop.queue.ndr import NdrComposer
from mailhop.queue.retry import RetryPolicy
from mailhop.queue.submission import Submission
from mailhop.receive.handler import ReceiveHandler
from mailhop.receive.users import UserStore, add_user
from mailhop.routing.router import Router
from mailhop.smtp.server import ServerOptions, SMTPServer
from mailhop.testing.clock import VirtualClock
from mailhop.testing.store import MemoryStore
from mailhop.tracking.events import Tracker
from tests.unit.smtp_helpers import RawClient, make_tls_material

HERE = Path(__file__).parent
DIALOGUES = sorted(HERE.glob("*.dialogue"))
SCRIPTS = {path: path.read_text(encoding="utf-8") for path in DIALOGUES}


def unescape(text: str) -> bytes:
    text = re.sub(r"\{(\d+)\*(.)\}", lambda m: m.group(2) * int(m.group(1)), text)
    return text.encode("utf-8").decode("unicode_escape").encode("latin-1")


def pattern(text: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(part) for part in text.split("*")) + "$", re.S)


@dataclass
class Receive:
    server: SMTPServer
    store: MemoryStore
    port: int


@pytest.fixture
async def receive(tmp_path: Path) -> AsyncIterator[Receive]:
    clock = VirtualClock()
    settings = from_mapping({"server": {"name": "EXCH01", "fqdn": "exch01.contoso.test",
                                        "data_dir": str(tmp_path / "data")}})
    store = MemoryStore(clock)
    ctx = QueueContext(settings, store, Tracker(clock, "EXCH01/0/test"), clock, IdGenerator(clock),
                       RetryPolicy(settings.queue, random.Random(0)), "EXCH01/0/test")
    live = Live(Snapshot(Router([], "EXCH01")))
    submission = Submission(ctx, live, NdrComposer(ctx, live))
    add_user(tmp_path / "users", "app@contoso.test", "s3cret")
    material = make_tls_material()
    rc = ReceiveConnectorSettings(name="Dialogues", remote_ip_ranges=["127.0.0.0/8"], max_message_size=100_000,
                                  failed_login_delay=0)
    handler = ReceiveHandler(rc, submission, UserStore(tmp_path / "users"))
    server = SMTPServer(handler, ServerOptions(hostname="exch01.contoso.test", max_message_size=100_000,
                                               tls_context=material.server, auth_enabled=True))
    await server.start("127.0.0.1", 0)
    receive = Receive(server, store, int(server.sockets[0].getsockname()[1]))  # type: ignore[attr-defined]
    receive.client_tls = material.client  # type: ignore[attr-defined]
    yield receive
    await server.stop(0)


@pytest.mark.parametrize("path", DIALOGUES, ids=[p.stem for p in DIALOGUES])
async def test_dialogue(path: Path, receive: Receive) -> None:
    client = await RawClient.connect(receive.port)
    pending: list[str] = []  # reply lines read but not yet matched
    try:
        greeting = await client.read_reply()
        assert greeting.code == 220, str(greeting)
        for number, raw in enumerate(SCRIPTS[path].splitlines(), 1):
            where = f"{path.name}:{number}"
            if not raw.strip() or raw.startswith("#"):
                continue
            kind, _, arg = raw.partition(" ")
            if kind == "c:":
                await client.send(unescape(arg) + b"\r\n")
            elif kind == "c!":
                await client.send(unescape(arg))
            elif kind in ("s:", "s+:"):
                want = pattern(arg)
                while True:
                    if not pending:
                        pending = list((await client.read_reply()).lines)
                    line = pending.pop(0)
                    final = len(line) == 3 or line[3] == " "
                    if kind == "s:" or final:
                        break
                assert want.match(line), f"{where}: expected {arg!r}, the server said {line!r}"
            elif kind == "tls:":
                assert not pending, f"{where}: unread reply lines before TLS: {pending}"
                await client.starttls(receive.client_tls)  # type: ignore[attr-defined]
            elif kind == "closed:":
                assert not pending, f"{where}: unread reply lines: {pending}"
                await client.expect_eof()
            elif kind == "stored:":
                stored = await receive.store.queues.messages()
                assert len(stored) == int(arg), f"{where}: {len(stored)} message(s) stored, not {arg}"
            elif kind == "body:":
                [*_, (info, _)] = await receive.store.queues.messages()
                body = await receive.store.messages.body(info.id)
                assert unescape(arg) in body, f"{where}: {arg!r} not in the stored body {body[-300:]!r}"
            else:
                raise AssertionError(f"{where}: unknown line {raw!r}")
        assert not pending, f"{path.name}: reply lines nobody expected: {pending}"
    finally:
        await client.close()


def test_every_dialogue_says_what_it_shows() -> None:
    assert DIALOGUES, "no dialogues found"
    for path, script in SCRIPTS.items():
        assert script.startswith("# "), f"{path.name} must begin with a comment"
