"""The SQL store: every repository over one engine, with one body of SQL for SQLite and PostgreSQL.

``SqlStore`` wires the repositories (connectors, messages, queues, servers, tokens,
dkim, mta_sts, tls_reports) to
one ``Engine`` (writer thread with group commit, reader thread) and runs the
migrations when it opens; ``store.sqlite`` and ``store.postgres`` supply the dialects.
"""

from __future__ import annotations

from mailhop.clock import SYSTEM_CLOCK, Clock
from mailhop.store.engine import Dialect, Engine
from mailhop.store.migrate import migrate
from mailhop.store.sql.cluster import SqlServers, SqlTokens
from mailhop.store.sql.connectors import SqlConnectors
from mailhop.store.sql.dkim import SqlDkimKeys
from mailhop.store.sql.messages import SqlMessages
from mailhop.store.sql.mta_sts import SqlStsCache
from mailhop.store.sql.queues import SqlQueues
from mailhop.store.sql.tls_reports import SqlTlsReports


class SqlStore:
    def __init__(self, dialect: Dialect, clock: Clock = SYSTEM_CLOCK) -> None:
        self.dialect = dialect
        self.engine = Engine(dialect)
        self.connectors = SqlConnectors(self.engine, clock)
        self.messages = SqlMessages(self.engine)
        self.queues = SqlQueues(self.engine, clock)
        self.servers = SqlServers(self.engine)
        self.tokens = SqlTokens(self.engine, clock)
        self.dkim = SqlDkimKeys(self.engine, clock)
        self.mta_sts = SqlStsCache(self.engine)
        self.tls_reports = SqlTlsReports(self.engine)

    async def _start(self) -> None:
        await self.engine.start(lambda conn: migrate(conn, self.dialect))

    async def close(self) -> None:
        await self.engine.close()
