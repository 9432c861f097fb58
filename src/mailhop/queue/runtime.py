"""What the queue's parts share at run time: settings, store, router, log, clock.

One ``Runtime`` is built by the service and handed to submission, scheduler and
delivery; it holds references and the few values that change while the server
runs (the router after a connector change, the queues' admin state).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mailhop.config import Settings
from mailhop.model.ids import IdGenerator
from mailhop.queue.retry import RetryPolicy
from mailhop.routing.router import Router
from mailhop.store.base import QueueState, Store
from mailhop.tracking.log import TrackingLog


@dataclass
class Runtime:
    settings: Settings
    store: Store
    tracking: TrackingLog
    owner: str
    router: Router
    retry: RetryPolicy
    ids: IdGenerator
    clock: Callable[[], float] = time.time
    queue_states: dict[str, QueueState] = field(default_factory=dict)

    @property
    def owner_prefix(self) -> str:
        """``NAME/WORKER``: the owners of this server worker's earlier incarnations share it."""
        return self.owner.rsplit("/", 1)[0]

    @property
    def server_name(self) -> str:
        return self.settings.server.name

    @property
    def lease_until(self) -> float:
        return self.clock() + self.settings.cluster.lease_timeout

    def queue_state(self, queue: str) -> QueueState | None:
        return self.queue_states.get(queue.lower())

    def is_suspended(self, queue: str) -> bool:
        state = self.queue_state(queue)
        return bool(state and state.suspended)

    def retry_until(self, queue: str) -> float | None:
        """When a queue in Retry may next be tried; None when it is not in Retry."""
        state = self.queue_state(queue)
        if state and state.retry_until and state.retry_until > self.clock():
            return state.retry_until
        return None

    def my_connectors(self) -> list[str]:
        """Guids of the enabled connectors this server is a source transport server of."""
        return [c.guid for c in self.router.connectors if c.enabled and c.is_source(self.server_name)]
