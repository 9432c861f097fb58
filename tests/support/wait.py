"""Waiting for something to become true, without asserting how long it took."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0


def wait_for(predicate: Callable[[], T], timeout: float = DEFAULT_TIMEOUT, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


async def async_wait_for(
    predicate: Callable[[], T | Awaitable[T]], timeout: float = DEFAULT_TIMEOUT, what: str = "condition"
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def failed_attempt(store: Any, message_id: int, what: str = "a failed delivery attempt") -> str:
    """Wait until the first recipient of ``message_id`` has a LastError; return it."""
    async def last_error() -> str | None:
        for info, rows in await store.queues.messages():
            if info.id == message_id and rows[0].last_error:
                return str(rows[0].last_error)
        return None

    return await async_wait_for(last_error, what=what)
