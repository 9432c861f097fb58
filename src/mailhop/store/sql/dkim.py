"""DKIM signing configs in SQL: one row per domain, the config as JSON, its private keys apart."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from mailhop.clock import Clock
from mailhop.errors import ConflictError, NotFoundError
from mailhop.model.dkim import DkimConfig, from_record, kept_keys, to_record
from mailhop.store.engine import Conn, Engine, Row


class SqlDkimKeys:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.db = engine
        self.clock = clock

    async def list(self) -> list[DkimConfig]:
        def op(conn: Conn) -> list[DkimConfig]:
            return [from_record(json.loads(r["data"])) for r in
                    conn.execute("SELECT data FROM dkim_configs ORDER BY domain")]

        return await self.db.read(op)

    async def get(self, domain: str) -> DkimConfig:
        return await self.db.read(lambda conn: from_record(json.loads(_row(conn, domain)["data"])))

    async def create(self, config: DkimConfig, private_keys: Mapping[str, str]) -> None:
        def op(conn: Conn) -> None:
            if conn.execute("SELECT 1 FROM dkim_configs WHERE domain = ?", (config.domain,)).fetchone():
                raise ConflictError(f"A DKIM signing config for '{config.domain}' already exists")
            conn.execute("INSERT INTO dkim_configs (domain, data, private_keys, changed_at) VALUES (?,?,?,?)",
                         (config.domain, json.dumps(to_record(config)), json.dumps(dict(private_keys)),
                          self.clock.now()))
            _bump_version(conn)

        await self.db.write(op)

    async def update(self, domain: str, change: Callable[[DkimConfig], DkimConfig],
                     private_keys: Mapping[str, str] | None = None) -> DkimConfig:
        def op(conn: Conn) -> DkimConfig:
            row = _row(conn, domain)
            updated = change(from_record(json.loads(row["data"])))
            keys = kept_keys(updated, {**json.loads(row["private_keys"]), **(private_keys or {})})
            conn.execute("UPDATE dkim_configs SET data = ?, private_keys = ?, changed_at = ? WHERE domain = ?",
                         (json.dumps(to_record(updated)), json.dumps(keys), self.clock.now(), row["domain"]))
            _bump_version(conn)
            return updated

        return await self.db.write(op)

    async def delete(self, domain: str) -> str:
        def op(conn: Conn) -> str:
            row = _row(conn, domain)
            conn.execute("DELETE FROM dkim_configs WHERE domain = ?", (row["domain"],))
            _bump_version(conn)
            return str(row["domain"])

        return await self.db.write(op)

    async def private_keys(self, domain: str) -> dict[str, str]:
        return await self.db.read(lambda conn: dict(json.loads(_row(conn, domain)["private_keys"])))

    async def version(self) -> int:
        def op(conn: Conn) -> int:
            return int(conn.execute("SELECT value FROM meta WHERE key = 'dkim_version'").fetchone()["value"])

        return await self.db.read(op)


def _row(conn: Conn, domain: str) -> Row:
    row = conn.execute("SELECT domain, data, private_keys FROM dkim_configs WHERE domain = ?",
                       (domain.strip().rstrip(".").lower(),)).fetchone()
    if row is None:
        raise NotFoundError(f"There is no DKIM signing config for '{domain}'")
    return row  # type: ignore[no-any-return]


def _bump_version(conn: Conn) -> None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'dkim_version'").fetchone()
    conn.execute("UPDATE meta SET value = ? WHERE key = 'dkim_version'", (str(int(row[0]) + 1),))
