"""What the queue's parts share: fixed dependencies, and the routing snapshot they all read.

``QueueContext`` is built once by the service (settings, store, tracker, clock, ids,
retry policy, this worker's lease owner) and never changes.  ``Snapshot`` is what
changes while the server runs, frozen: the router built from the current connectors
and the queues' admin and Retry states.  ``Live`` holds the current snapshot; the
config watch replaces it when connectors or queue states change, the outcome path
when a queue goes into or out of Retry.  Readers take ``live.snapshot`` once per
decision, so one decision never sees half of a change.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from mailhop.clock import Clock
from mailhop.config import Settings
from mailhop.model.ids import IdGenerator
from mailhop.queue.retry import RetryPolicy
from mailhop.routing.router import Router
from mailhop.store.base import QueueState, Store
from mailhop.tracking.events import Tracker


@dataclass(frozen=True)
class QueueContext:
    settings: Settings
    store: Store
    tracker: Tracker
    clock: Clock
    ids: IdGenerator
    retry: RetryPolicy
    owner: str  # this worker's incarnation: NAME/WORKER/RANDOM

    @property
    def owner_prefix(self) -> str:
        """``NAME/WORKER``: the owners of this server worker's earlier incarnations share it."""
        return self.owner.rsplit("/", 1)[0]

    @property
    def server_name(self) -> str:
        return self.settings.server.name

    def lease_until(self) -> float:
        return self.clock.now() + self.settings.cluster.lease_timeout


@dataclass(frozen=True)
class Snapshot:
    router: Router
    queue_states: Mapping[str, QueueState] = field(default_factory=lambda: MappingProxyType({}))  # by lower name

    def queue_state(self, queue: str) -> QueueState | None:
        return self.queue_states.get(queue.lower())

    def is_suspended(self, queue: str) -> bool:
        state = self.queue_state(queue)
        return bool(state and state.suspended)

    def retry_until(self, queue: str, now: float) -> float | None:
        """When a queue in Retry may next be tried; None when it is not in Retry."""
        state = self.queue_state(queue)
        if state and state.retry_until and state.retry_until > now:
            return state.retry_until
        return None

    @functools.cached_property
    def my_connectors(self) -> list[str]:
        """Guids of the enabled connectors this server is a source transport server of."""
        router = self.router
        return [c.guid for c in router.connectors if c.enabled and c.is_source(router.server_name)]

    def with_states(self, states: Mapping[str, QueueState]) -> Snapshot:
        return dataclasses.replace(self, queue_states=MappingProxyType(dict(states)))

    def with_state(self, state: QueueState) -> Snapshot:
        return self.with_states({**self.queue_states, state.queue.lower(): state})


class Live:
    """The current snapshot; replaced whole, never changed in place."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def publish(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
