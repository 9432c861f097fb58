"""Where mailhop keeps connectors, queued mail and server state.

``open_store`` picks the implementation from ``[server] store``: ``sqlite`` (the
default, one file under the data directory), ``sqlite:PATH``, or a
``postgresql://`` URL for several servers sharing one store.
"""

from __future__ import annotations

from mailhop.clock import SYSTEM_CLOCK, Clock
from mailhop.config import Settings
from mailhop.store.base import QueueState, ServerInfo, Store
from mailhop.store.postgres import PostgresStore
from mailhop.store.sqlite import SqliteStore

__all__ = ["PostgresStore", "QueueState", "ServerInfo", "SqliteStore", "Store", "open_store", "open_url"]


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


async def open_url(url: str, default_sqlite: str, clock: Clock = SYSTEM_CLOCK) -> Store:
    """A store from a URL: ``postgresql://...``, ``sqlite:PATH`` or ``sqlite`` (the default file)."""
    if is_postgres(url):
        return await PostgresStore.open(url, clock)
    from pathlib import Path

    path = url.removeprefix("sqlite:").removeprefix("//") if url.startswith("sqlite:") and url != "sqlite:" else default_sqlite
    return await SqliteStore.open(Path(path), clock)


async def open_store(settings: Settings, clock: Clock = SYSTEM_CLOCK) -> Store:
    return await open_url(settings.server.store, str(settings.sqlite_path), clock)
