"""When to try again: Exchange's retry schedule, with jitter.

A queue whose next hop cannot be reached retries quickly a few times (glitch
retries), then at the transient interval, then every ``message_retry_interval``
until the message expires.  A recipient refused with a 4xx while the connection
works waits ``message_retry_interval`` (Exchange's MessageRetryInterval).  Jitter
spreads retries so a restart or an outage does not make every message retry at
the same instant.  No retry is ever scheduled after the message's expiry time.
"""

from __future__ import annotations

import random

from mailhop.config import QueueSettings


class RetryPolicy:
    def __init__(self, settings: QueueSettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.rng = rng or random.Random()

    def _jitter(self, seconds: float) -> float:
        return seconds * (1 + self.rng.uniform(0, self.settings.retry_jitter))

    def queue_delay(self, failures: int) -> float:
        """Delay after the ``failures``-th consecutive connection failure of a queue (1-based)."""
        s = self.settings
        if failures <= s.glitch_retry_count:
            base = s.glitch_retry_interval
        elif failures <= s.glitch_retry_count + s.transient_retry_count:
            base = s.transient_retry_interval
        else:
            base = s.message_retry_interval
        return self._jitter(base)

    def message_delay(self) -> float:
        """Delay after a recipient was deferred (4xx) on a working connection."""
        return self._jitter(self.settings.message_retry_interval)

    @staticmethod
    def bounded(when: float, expires_at: float, delay_at: float | None) -> float:
        """Never wait past the moment something must happen to the message."""
        limit = expires_at if delay_at is None else min(expires_at, delay_at)
        return min(when, limit)
