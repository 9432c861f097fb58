"""The dashboard's numbers: the last hour of mail by outcome, queue depth, oldest message age.

The hour comes from the message tracking log (RECEIVE, SEND, DEFER, FAIL in
five-minute buckets); depth and age from the store.  Reading the log of the last
hour is bounded by the log's own size limits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

from mailhop.services.queues import QueueService
from mailhop.store.base import Store
from mailhop.tracking.log import iso
from mailhop.tracking.search import Query, search

OUTCOMES = {"RECEIVE": "Received", "SEND": "Delivered", "DEFER": "Deferred", "FAIL": "Failed"}
BUCKET = 300
WINDOW = 3600


async def dashboard(store: Store, queue_service: QueueService, tracking_directory: Path, now: float) -> dict[str, Any]:
    start = now - WINDOW
    first = int(start // BUCKET) * BUCKET
    buckets = [{"Start": iso(first + i * BUCKET), **{v: 0 for v in OUTCOMES.values()}}
               for i in range(int((now - first) // BUCKET) + 1)]
    events = await asyncio.to_thread(search, tracking_directory, Query(start=start, limit=1_000_000))
    totals = {v: 0 for v in OUTCOMES.values()}
    for e in events:
        outcome = OUTCOMES.get(str(e.get("EventId")))
        if outcome is None:
            continue
        try:
            ts = dt.datetime.fromisoformat(str(e["Timestamp"]).replace("Z", "+00:00")).timestamp()
        except (KeyError, ValueError):
            continue
        index = int((ts - first) // BUCKET)
        if 0 <= index < len(buckets):
            count = len(e.get("Recipients") or [1])
            buckets[index][outcome] += count  # type: ignore[operator]
            totals[outcome] += count
    queues = await queue_service.list_queues()
    oldest = await store.queues.messages(limit=1)
    return {
        "WindowSeconds": WINDOW,
        "BucketSeconds": BUCKET,
        "Buckets": buckets,
        "Totals": totals,
        "QueueDepth": sum(int(q["MessageCount"]) for q in queues),
        "Queues": [{"Identity": q["Identity"], "MessageCount": q["MessageCount"], "Status": q["Status"]}
                   for q in queues],
        "OldestMessageAgeSeconds": round(now - oldest[0][0].received_at, 1) if oldest else None,
    }
