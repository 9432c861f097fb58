"""AUTH on a receive connector under brute force: per-address throttling across connections,
the same cost for known and unknown names, and hashing in a pool of its own."""

from __future__ import annotations

import asyncio
import hashlib
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from mailhop.config import ReceiveConnectorSettings, from_mapping
from mailhop.model.ids import IdGenerator
from mailhop.queue.context import Live, QueueContext, Snapshot
from mailhop.queue.ndr import NdrComposer
from mailhop.queue.retry import RetryPolicy
from mailhop.queue.submission import Submission
from mailhop.receive.handler import AUTH_FAILURE_LIMIT, AUTH_FAILURE_WINDOW, ReceiveHandler
from mailhop.receive.users import UserStore, add_user
from mailhop.routing.router import Router
from mailhop.smtp.server import Session
from mailhop.testing.clock import VirtualClock
from mailhop.testing.store import MemoryStore
from mailhop.tracking.events import Tracker


@pytest.fixture
def handler(tmp_path: Path) -> tuple[ReceiveHandler, VirtualClock]:
    clock = VirtualClock()
    settings = from_mapping({"server": {"name": "EXCH01", "data_dir": str(tmp_path)}})
    ctx = QueueContext(settings, MemoryStore(clock), Tracker(clock, "x"), clock, IdGenerator(clock),
                       RetryPolicy(settings.queue, random.Random(0)), "EXCH01/0/x")
    live = Live(Snapshot(Router([], "EXCH01")))
    add_user(tmp_path / "users", "app@contoso.test", "right")
    rc = ReceiveConnectorSettings(name="Auth", failed_login_delay=1)
    return ReceiveHandler(rc, Submission(ctx, live, NdrComposer(ctx, live)), UserStore(tmp_path / "users"),
                          clock), clock


def session(ip: str) -> Session:
    return Session(peer_ip=ip, peer_port=40000, local_ip="127.0.0.1", local_port=25)


async def auth(h: ReceiveHandler, clock: VirtualClock, ip: str, user: str, password: str) -> int:
    """The AUTH answer: the hash runs in a real thread, the delay on the virtual clock."""
    task = asyncio.create_task(h.on_auth(session(ip), user, password))
    while not task.done():
        when = clock.next_timer
        if when is None:
            await asyncio.wait({task}, timeout=0.01)  # the hashing thread (never a timing check)
        else:
            await clock.advance(when - clock.now())
    return task.result().code


async def test_failures_from_one_address_are_throttled_across_connections(
        handler: tuple[ReceiveHandler, VirtualClock], monkeypatch: Any) -> None:
    h, clock = handler
    hashes = 0
    real = hashlib.scrypt

    def counted(*args: Any, **kw: Any) -> bytes:
        nonlocal hashes
        hashes += 1
        return real(*args, **kw)

    monkeypatch.setattr(hashlib, "scrypt", counted)
    for _ in range(AUTH_FAILURE_LIMIT):  # each a new session: closing early skips nothing
        assert await auth(h, clock, "198.51.100.7", "app@contoso.test", "guess") == 535
    assert hashes == AUTH_FAILURE_LIMIT
    # Now refused at once, without a hash; the right password too, from that address.
    assert await auth(h, clock, "198.51.100.7", "app@contoso.test", "right") == 454
    assert hashes == AUTH_FAILURE_LIMIT
    # Another address is not affected; the guesser's failures age out.
    assert await auth(h, clock, "198.51.100.8", "app@contoso.test", "right") == 235
    await clock.advance(AUTH_FAILURE_WINDOW)
    assert await auth(h, clock, "198.51.100.7", "app@contoso.test", "right") == 235


async def test_the_delay_grows_with_the_failures_of_the_address_not_of_the_session(
        handler: tuple[ReceiveHandler, VirtualClock]) -> None:
    h, clock = handler
    start = clock.now()
    await auth(h, clock, "198.51.100.9", "app@contoso.test", "x")
    first = clock.now() - start
    start = clock.now()
    await auth(h, clock, "198.51.100.9", "app@contoso.test", "x")  # a new connection
    assert (first, clock.now() - start) == (1, 2)


def test_unknown_and_known_names_cost_one_hash_each(tmp_path: Path, monkeypatch: Any) -> None:
    add_user(tmp_path / "users", "app@contoso.test", "right")
    users = UserStore(tmp_path / "users")
    calls: list[str] = []
    real = hashlib.scrypt
    monkeypatch.setattr(hashlib, "scrypt", lambda *a, **k: calls.append("scrypt") or real(*a, **k))
    assert not users.verify("nobody@contoso.test", "x")
    unknown = len(calls)
    assert not users.verify("app@contoso.test", "wrong")
    assert unknown == len(calls) - unknown == 1


async def test_hashing_runs_in_its_own_pool(tmp_path: Path) -> None:
    add_user(tmp_path / "users", "app@contoso.test", "right")
    users = UserStore(tmp_path / "users")
    seen: list[str] = []
    real = users.verify

    def verify(name: str, password: str) -> bool:
        seen.append(threading.current_thread().name)
        return real(name, password)

    users.verify = verify  # type: ignore[method-assign]
    assert await users.check("app@contoso.test", "right")
    assert seen and seen[0].startswith("mailhop-auth")
