"""The cluster store: PostgreSQL, shared by every transport server of an organization.

The same SQL as the embedded store (``store.sql``), adapted: ``?`` placeholders become
``%s``, the claim locks the rows it takes with ``FOR UPDATE SKIP LOCKED`` so that two
servers never lease the same recipient, and a connection lost to a PostgreSQL restart
is re-opened for the next batch.  PostgreSQL's own commit is durable (fsync on).
The URL is ``postgresql://user[:password]@host[:port]/database`` (libpq's forms).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import psycopg
import psycopg.errors

from mailhop.clock import SYSTEM_CLOCK, Clock
from mailhop.store.engine import Conn
from mailhop.store.sql import SqlStore

_PLACEHOLDER = re.compile(r"\?")


class PgRow(tuple[Any, ...]):
    """A row indexable by position and by column name, like sqlite3.Row."""

    _index: dict[str, int]

    def __new__(cls, values: Sequence[Any], index: dict[str, int]) -> PgRow:
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def _row_factory(cursor: psycopg.Cursor[Any]) -> Any:
    names = [d.name for d in cursor.description] if cursor.description else []
    index = {n: i for i, n in enumerate(names)}
    return lambda values: PgRow(values, index)


class PgConnection:
    """psycopg with sqlite3's calling conventions."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    @staticmethod
    def _sql(sql: str) -> str:
        return _PLACEHOLDER.sub("%s", sql.replace("%", "%%"))

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Any:
        return self.conn.execute(self._sql(sql), params or None)

    def executemany(self, sql: str, params: Iterable[Sequence[Any]], /) -> None:
        rows = list(params)
        if rows:
            with self.conn.cursor() as cur:
                cur.executemany(self._sql(sql), rows)

    def close(self) -> None:
        self.conn.close()


class PostgresDialect:
    name = "postgres"
    least = "LEAST"
    for_update = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str) -> None:
        self.url = url

    def writer_lock(self) -> AbstractContextManager[None]:
        return nullcontext()  # PostgreSQL's own row locks (FOR UPDATE SKIP LOCKED) serialize what must be

    def connect(self) -> Conn:
        conn = psycopg.connect(self.url, autocommit=True, row_factory=_row_factory, connect_timeout=10)
        return PgConnection(conn)

    def begin(self, writer: bool) -> str:
        return "BEGIN"

    def is_conflict(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.errors.UniqueViolation)

    def is_error(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.Error)

    def is_disconnect(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)

    def is_full(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.errors.DiskFull)

    def schema_version(self, conn: Conn) -> int:
        if conn.execute("SELECT to_regclass('meta')").fetchone()[0] is None:
            return 0
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row is not None else 0


class PostgresStore(SqlStore):
    def __init__(self, url: str, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(PostgresDialect(url), clock)
        self.url = url

    @classmethod
    async def open(cls, url: str, clock: Clock = SYSTEM_CLOCK) -> PostgresStore:
        store = cls(url, clock)
        await store._start()
        return store
