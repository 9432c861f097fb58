"""The Clock contract, run against the system clock and the virtual clock of mailhop.testing.

The system clock is asked for instants a few milliseconds ahead only; every assertion is
about order ("not before its instant", "in instant order"), never about how long
something took, so a loaded machine can delay these tests but not fail them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest

from mailhop.clock import SYSTEM_CLOCK, Clock, Wakeup
from mailhop.testing.clock import VirtualClock


@pytest.fixture(params=["system", "virtual"])
def clock(request: pytest.FixtureRequest) -> Clock:
    return SYSTEM_CLOCK if request.param == "system" else VirtualClock()


async def run(clock: Clock, coro: Awaitable[object], seconds: float = 1.0) -> None:
    """Let ``coro`` run to its end: on the virtual clock by advancing it, else by waiting."""
    task = asyncio.ensure_future(coro)
    if isinstance(clock, VirtualClock):
        await clock.advance(seconds)
    await asyncio.wait_for(task, 30)


async def test_now_does_not_go_backwards(clock: Clock) -> None:
    seen = [clock.now() for _ in range(1000)]
    assert seen == sorted(seen)


async def test_sleep_returns_once_its_instant_has_passed(clock: Clock) -> None:
    start = clock.now()
    await run(clock, clock.sleep(0.02))
    assert clock.now() >= start + 0.02


async def test_sleep_zero_and_negative_only_yield(clock: Clock) -> None:
    start = clock.now()
    await asyncio.wait_for(clock.sleep(0), 30)
    await asyncio.wait_for(clock.sleep(-5), 30)
    assert clock.now() >= start


async def test_timers_run_once_in_instant_order_and_not_after_cancel(clock: Clock) -> None:
    calls: list[str] = []
    now = clock.now()
    clock.call_at(now + 0.03, lambda: calls.append("third"))
    clock.call_at(now + 0.01, lambda: calls.append("first"))
    cancelled = clock.call_at(now + 0.02, lambda: calls.append("cancelled"))
    clock.call_at(now + 0.02, lambda: calls.append("second"))
    cancelled.cancel()
    await run(clock, clock.sleep(0.05))
    assert calls == ["first", "second", "third"]


async def test_a_timer_never_runs_before_its_instant(clock: Clock) -> None:
    fired: list[float] = []
    when = clock.now() + 0.02
    clock.call_at(when, lambda: fired.append(clock.now()))
    await run(clock, clock.sleep(0.05))
    assert len(fired) == 1 and fired[0] >= when


async def test_wakeup_ends_early_when_set_and_times_out_otherwise(clock: Clock) -> None:
    wake = Wakeup()
    result: list[bool] = []

    async def wait(timeout: float) -> None:
        result.append(await wake.wait(clock, timeout))

    start = clock.now()
    await run(clock, wait(0.02))
    assert result == [False] and clock.now() >= start + 0.02
    waiter = asyncio.ensure_future(wait(3600))
    await asyncio.sleep(0)
    wake.set()
    await asyncio.wait_for(waiter, 30)
    assert result == [False, True]
    wake.clear()
    await run(clock, wait(0.01))
    assert result == [False, True, False]


async def test_virtual_time_moves_only_when_advanced() -> None:
    clock = VirtualClock()
    start = clock.now()
    sleeper = asyncio.ensure_future(clock.sleep(300))
    for _ in range(10):
        await asyncio.sleep(0)
    assert clock.now() == start and not sleeper.done()
    await clock.advance(299)
    assert not sleeper.done()
    await clock.advance(1)
    assert sleeper.done() and clock.now() == start + 300
