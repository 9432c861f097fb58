"""mailhop.queue.retry: glitch, transient and steady retries with bounded jitter."""

from __future__ import annotations

import random

import pytest

from mailhop.config import QueueSettings
from mailhop.queue.retry import RetryPolicy

# Distinct intervals so each phase of the schedule is recognisable.
SETTINGS = QueueSettings(
    glitch_retry_count=4,
    glitch_retry_interval=60,
    transient_retry_count=6,
    transient_retry_interval=600,
    message_retry_interval=900,
    retry_jitter=0.1,
)
NO_JITTER = SETTINGS.model_copy(update={"retry_jitter": 0.0})


@pytest.mark.parametrize(
    ("failures", "base"),
    [
        (1, 60.0),
        (2, 60.0),
        (4, 60.0),  # last glitch retry
        (5, 600.0),  # first transient retry
        (10, 600.0),  # last transient retry (4 + 6)
        (11, 900.0),  # then the steady message retry interval
        (50, 900.0),
        (1000, 900.0),
    ],
)
def test_queue_delay_schedule_without_jitter(failures: int, base: float) -> None:
    assert RetryPolicy(NO_JITTER, random.Random(1)).queue_delay(failures) == base


@pytest.mark.parametrize(
    ("glitch", "transient", "expected"),
    [
        (0, 0, [900.0, 900.0, 900.0]),
        (0, 2, [600.0, 600.0, 900.0]),
        (2, 0, [60.0, 60.0, 900.0]),
        (1, 1, [60.0, 600.0, 900.0]),
    ],
)
def test_queue_delay_follows_the_configured_counts(glitch: int, transient: int, expected: list[float]) -> None:
    settings = NO_JITTER.model_copy(update={"glitch_retry_count": glitch, "transient_retry_count": transient})
    policy = RetryPolicy(settings, random.Random(1))
    assert [policy.queue_delay(n) for n in (1, 2, 3)] == expected


def test_message_delay_without_jitter_is_the_message_retry_interval() -> None:
    assert RetryPolicy(NO_JITTER, random.Random(1)).message_delay() == 900.0


@pytest.mark.parametrize("seed", [0, 1, 2, 42, 12345])
@pytest.mark.parametrize("failures", [1, 4, 5, 10, 11, 30])
def test_queue_delay_jitter_is_bounded(seed: int, failures: int) -> None:
    base = RetryPolicy(NO_JITTER, random.Random(0)).queue_delay(failures)
    delay = RetryPolicy(SETTINGS, random.Random(seed)).queue_delay(failures)
    assert base <= delay <= base * 1.1


@pytest.mark.parametrize("seed", [0, 7, 99])
def test_message_delay_jitter_is_bounded(seed: int) -> None:
    policy = RetryPolicy(SETTINGS, random.Random(seed))
    delays = [policy.message_delay() for _ in range(200)]
    assert all(900.0 <= d <= 990.0 for d in delays)


def test_jitter_spreads_retries() -> None:
    policy = RetryPolicy(SETTINGS, random.Random(3))
    delays = [policy.queue_delay(1) for _ in range(100)]
    assert len(set(delays)) > 90  # not every message retries at the same instant
    assert max(delays) - min(delays) > 3.0  # covers a good part of the 6 s window
    assert all(60.0 <= d <= 66.0 for d in delays)


@pytest.mark.parametrize("jitter", [0.0, 0.25, 1.0])
def test_jitter_fraction_is_configurable(jitter: float) -> None:
    settings = SETTINGS.model_copy(update={"retry_jitter": jitter})
    policy = RetryPolicy(settings, random.Random(5))
    delays = [policy.queue_delay(11) for _ in range(100)]
    assert all(900.0 <= d <= 900.0 * (1 + jitter) for d in delays)
    if jitter:
        assert max(delays) > 900.0


def test_seeded_policies_are_reproducible() -> None:
    a = RetryPolicy(SETTINGS, random.Random(2024))
    b = RetryPolicy(SETTINGS, random.Random(2024))
    assert [a.queue_delay(n) for n in range(1, 15)] == [b.queue_delay(n) for n in range(1, 15)]


def test_policy_uses_the_given_random_source() -> None:
    rng = random.Random(8)
    expected_rng = random.Random(8)
    policy = RetryPolicy(SETTINGS, rng)
    assert policy.queue_delay(1) == 60.0 * (1 + expected_rng.uniform(0, 0.1))


@pytest.mark.parametrize(
    ("when", "expires_at", "delay_at", "expected"),
    [
        (100.0, 500.0, None, 100.0),  # nothing due before the retry
        (600.0, 500.0, None, 500.0),  # capped at expiry
        (100.0, 500.0, 300.0, 100.0),
        (400.0, 500.0, 300.0, 300.0),  # capped at the delay DSN time
        (700.0, 500.0, 300.0, 300.0),
        (700.0, 500.0, 600.0, 500.0),  # delay DSN after expiry: expiry wins
        (500.0, 500.0, None, 500.0),
    ],
)
def test_bounded(when: float, expires_at: float, delay_at: float | None, expected: float) -> None:
    assert RetryPolicy.bounded(when, expires_at, delay_at) == expected


def test_bounded_never_schedules_after_expiry() -> None:
    policy = RetryPolicy(SETTINGS, random.Random(11))
    now, expires_at = 1_000.0, 1_500.0
    for failures in range(1, 20):
        when = RetryPolicy.bounded(now + policy.queue_delay(failures), expires_at, None)
        assert when <= expires_at
