"""Copying one store into another (``mailhop db migrate``): SQLite to PostgreSQL, say.

Connectors (with their stored passwords), DKIM signing configs (with their sealed
private keys: the target's servers need the same secret key file), queue states and every queued message with
its body and recipients are copied; leases are dropped (the target's servers claim the
mail afresh).  The target must be empty: the copy refuses to merge.  Messages move in
batches, each committed on its own, so a failure leaves a prefix copied and says so.
"""

from __future__ import annotations

from typing import Any

from mailhop.errors import StoreError
from mailhop.model.message import ACTIVE, READY, RETRY, NewMessage, NewRecipient
from mailhop.store.base import Store

BATCH = 200


async def copy_store(source: Store, target: Store) -> dict[str, Any]:
    if await target.connectors.list() or await target.dkim.list() or await target.queues.messages(limit=1):
        raise StoreError("the target store is not empty: db migrate copies into an empty store only")
    connectors = await source.connectors.list()
    for c in connectors:
        await target.connectors.create(c, await source.connectors.secret(c.guid))
    configs = await source.dkim.list()
    for config in configs:
        await target.dkim.create(config, await source.dkim.private_keys(config.domain))
    states = await source.queues.states()
    for state in states:
        await target.queues.set_state(state)
    copied, after = 0, 0
    while True:
        page = await source.queues.messages(limit=BATCH, after=after)
        if not page:
            break
        batch = []
        for info, rows in page:
            body = await source.messages.body(info.id)
            recipients = [
                NewRecipient(r.address, (RETRY if r.attempts else READY) if r.status == ACTIVE else r.status,
                             r.queue, r.delivery_type, r.next_hop, r.next_attempt_at, connector=r.connector,
                             last_error=r.last_error, attempts=r.attempts, dsn=r.dsn, id=r.id)
                for r in rows
            ]
            batch.append(NewMessage(info, body, recipients))
            after = info.id
        try:
            await target.messages.submit(batch)
        except StoreError as exc:
            raise StoreError(f"copy stopped after {copied} message(s): {exc}") from None
        copied += len(batch)
    return {"Connectors": len(connectors), "DkimSigningConfigs": len(configs), "QueueStates": len(states), "Messages": copied}
