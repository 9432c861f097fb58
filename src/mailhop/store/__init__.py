"""Where mailhop keeps connectors, queued mail and server state.

``open_store`` picks the implementation from ``[server] store``: ``sqlite`` (the
default, one file under the data directory) or ``sqlite:PATH``.
"""

from __future__ import annotations

from mailhop.config import Settings
from mailhop.store.base import QueueState, ServerInfo, Store
from mailhop.store.sqlite import SqliteStore

__all__ = ["QueueState", "ServerInfo", "SqliteStore", "Store", "open_store"]


async def open_store(settings: Settings) -> Store:
    return await SqliteStore.open(settings.sqlite_path)
