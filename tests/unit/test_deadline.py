"""mailhop.smtp.deadline.ReadTimer: asyncio.timeout's behaviour with one timer per task."""

from __future__ import annotations

import asyncio

import pytest

from mailhop.smtp.deadline import ReadTimer


async def test_a_read_that_takes_too_long_raises_timeout_error() -> None:
    timer = ReadTimer()
    start = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        await timer.run(asyncio.sleep(5), 0.1)
    assert asyncio.get_running_loop().time() - start < 1
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_reads_within_their_timeout_return_their_result_and_the_task_goes_on() -> None:
    timer = ReadTimer()
    for i in range(5):  # 0.5 s in all, far beyond one timeout, never past a read's own deadline
        assert await timer.run(asyncio.sleep(0.1, result=i), 0.3) == i
    await asyncio.sleep(0.4)  # no read waiting: an old timer must not cancel anything now
    assert await timer.run(asyncio.sleep(0, result="still alive"), 0.3) == "still alive"
    timer.close()


async def test_a_shorter_timeout_after_a_longer_one_fires_on_time() -> None:
    timer = ReadTimer()
    assert await timer.run(asyncio.sleep(0, result=1), 60) == 1
    start = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        await timer.run(asyncio.sleep(5), 0.1)
    assert asyncio.get_running_loop().time() - start < 1


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    timer = ReadTimer()
    task = asyncio.create_task(timer.run(asyncio.sleep(5), 60))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_timer_follows_the_task_that_reads() -> None:
    timer = ReadTimer()

    async def read(value: int) -> int:
        return await timer.run(asyncio.sleep(0.05, result=value), 1)

    assert await asyncio.create_task(read(1)) == 1
    assert await asyncio.create_task(read(2)) == 2
    with pytest.raises(TimeoutError):
        await asyncio.create_task(timer.run(asyncio.sleep(5), 0.1))
