"""mailhop.smtp.deadline.ReadTimer: asyncio.timeout's behaviour with one timer per task.

On the virtual clock: "takes too long" and "within its timeout" are instants the test
chooses, never races against the machine's load.
"""

from __future__ import annotations

import asyncio

import pytest

from mailhop.smtp.deadline import ReadTimer
from mailhop.testing.clock import VirtualClock, settle


async def test_a_read_that_takes_too_long_raises_timeout_error() -> None:
    clock = VirtualClock()
    timer = ReadTimer(clock)
    task = asyncio.create_task(timer.run(clock.sleep(5), 0.1))
    await clock.advance(0.09)
    assert not task.done()
    await clock.advance(0.02)
    with pytest.raises(TimeoutError):
        await task
    assert task.cancelling() == 0


async def test_reads_within_their_timeout_return_their_result_and_the_task_goes_on() -> None:
    clock = VirtualClock()
    timer = ReadTimer(clock)

    async def reads() -> str:
        for _ in range(5):  # 0.5 s in all, far beyond one timeout, never past a read's own deadline
            assert await timer.run(clock.sleep(0.1), 0.3) is None
        await clock.sleep(0.4)  # no read waiting: an old timer must not cancel anything now
        return await timer.run(asyncio.sleep(0, result="still alive"), 0.3)

    task = asyncio.create_task(reads())
    await clock.advance(2)
    assert await task == "still alive"
    timer.close()


async def test_a_shorter_timeout_after_a_longer_one_fires_on_time() -> None:
    clock = VirtualClock()
    timer = ReadTimer(clock)

    async def reads() -> None:
        assert await timer.run(asyncio.sleep(0, result=1), 60) == 1
        await timer.run(clock.sleep(5), 0.1)

    task = asyncio.create_task(reads())
    await clock.advance(0.05)
    assert not task.done()
    await clock.advance(0.06)
    with pytest.raises(TimeoutError):
        await task


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    clock = VirtualClock()
    timer = ReadTimer(clock)
    task = asyncio.create_task(timer.run(clock.sleep(5), 60))
    await settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_timer_follows_the_task_that_reads() -> None:
    clock = VirtualClock()
    timer = ReadTimer(clock)

    async def read(value: int) -> int:
        return await timer.run(asyncio.sleep(0, result=value), 1)

    assert await asyncio.create_task(read(1)) == 1
    assert await asyncio.create_task(read(2)) == 2
    task = asyncio.create_task(timer.run(clock.sleep(5), 0.1))
    await clock.advance(0.2)
    with pytest.raises(TimeoutError):
        await task
