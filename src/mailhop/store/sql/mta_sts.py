"""The MTA-STS policy cache in SQL: one row per policy domain, the cached policy as JSON."""

from __future__ import annotations

from mailhop.delivery.mta_sts import CachedPolicy
from mailhop.store.engine import Conn, Engine


class SqlStsCache:
    def __init__(self, engine: Engine) -> None:
        self.db = engine

    async def get(self, domain: str) -> CachedPolicy | None:
        def op(conn: Conn) -> CachedPolicy | None:
            row = conn.execute("SELECT data FROM mta_sts_policies WHERE domain = ?", (domain.lower(),)).fetchone()
            return CachedPolicy.from_json(row["data"]) if row else None

        return await self.db.read(op)

    async def put(self, policy: CachedPolicy) -> None:
        def op(conn: Conn) -> None:
            conn.execute("DELETE FROM mta_sts_policies WHERE domain = ?", (policy.domain.lower(),))
            conn.execute("INSERT INTO mta_sts_policies (domain, data) VALUES (?, ?)",
                         (policy.domain.lower(), policy.to_json()))

        await self.db.write(op)

    async def list(self) -> list[CachedPolicy]:
        def op(conn: Conn) -> list[CachedPolicy]:
            return [CachedPolicy.from_json(r["data"]) for r in
                    conn.execute("SELECT data FROM mta_sts_policies ORDER BY domain")]

        return await self.db.read(op)
