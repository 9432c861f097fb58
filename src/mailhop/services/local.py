"""The services of the command line when no server runs on its data directory.

The CLI then acts on the store itself, with its own tracking (its events name the
process ``NAME/cli/<pid>``) and an NDR composer routed over the stored connectors.  Its
``pickup`` is the receive path of ``mailhop sendmail`` when no server runs (Postfix's
maildrop): the message is stamped, signed, routed and committed, and the server sends
it when it starts.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mailhop.clock import Clock
from mailhop.config import Settings
from mailhop.delivery.dns import DnsResolver
from mailhop.dkim.keyring import Keyring
from mailhop.model.ids import IdGenerator
from mailhop.queue.context import Live, QueueContext, Snapshot
from mailhop.queue.ndr import NdrComposer
from mailhop.queue.retry import RetryPolicy
from mailhop.queue.submission import Submission
from mailhop.routing.router import Router
from mailhop.sealing import Sealer
from mailhop.services import Services
from mailhop.store import open_store
from mailhop.tracking.events import Tracker
from mailhop.tracking.log import TrackingLog, tracking_dir


@asynccontextmanager
async def local_services(settings: Settings, clock: Clock) -> AsyncIterator[Services]:
    s = settings
    store = await open_store(s, clock)
    tracking = TrackingLog(tracking_dir(s.data_dir), s.tracking, s.server.fqdn, s.server.name, clock)
    try:
        owner = f"{s.server.name}/cli/{os.getpid()}"
        tracker = Tracker(clock, owner, [tracking])
        ctx = QueueContext(s, store, tracker, clock, IdGenerator(clock), RetryPolicy(s.queue), owner)
        states = {q.queue.lower(): q for q in await store.queues.states()}
        live = Live(Snapshot(Router(await store.connectors.list(), s.server.name)).with_states(states))
        sealer = Sealer(s.server.secret_key_path)
        keyring = Keyring(store.dkim, sealer)
        await keyring.refresh()
        ndr = NdrComposer(ctx, live, keyring)
        yield Services.build(s, store, clock, tracker, ndr, sealer, DnsResolver.from_settings(s.dns),
                             submission=Submission(ctx, live, ndr), keyring=keyring)
    finally:
        tracking.flush()
        await store.close()
