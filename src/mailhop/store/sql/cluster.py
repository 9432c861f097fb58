"""Transport servers sharing the store (heartbeats, requested states) and admin API tokens, in SQL."""

from __future__ import annotations

from collections.abc import Collection

from mailhop.clock import Clock
from mailhop.errors import ConflictError, NotFoundError
from mailhop.store.base import READ, AdminToken, ServerInfo
from mailhop.store.engine import Conn, Engine
from mailhop.store.sql.rows import placeholders


class SqlServers:
    def __init__(self, engine: Engine) -> None:
        self.db = engine

    async def heartbeat(self, server: ServerInfo, lease_until: float, held: Collection[int] | None = None) -> None:
        ids = None if held is None else list(held)
        def op(conn: Conn) -> None:
            conn.execute(
                "INSERT INTO servers (name, incarnation, fqdn, state, started_at, heartbeat_at) "
                "VALUES (?,?,?,?,?,?) ON CONFLICT (name) DO UPDATE SET incarnation = excluded.incarnation, "
                "fqdn = excluded.fqdn, state = excluded.state, started_at = excluded.started_at, "
                "heartbeat_at = excluded.heartbeat_at",
                (server.name, server.incarnation, server.fqdn, server.state, server.started_at, server.heartbeat_at),
            )
            if ids is None:
                conn.execute(
                    "UPDATE recipients SET lease_until = ? WHERE status = 'active' AND lease_owner = ?",
                    (lease_until, server.incarnation),
                )
                return
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                conn.execute(
                    f"UPDATE recipients SET lease_until = ? WHERE id IN ({placeholders(chunk)}) "
                    "AND status = 'active' AND lease_owner = ?",
                    (lease_until, *chunk, server.incarnation),
                )

        await self.db.write(op)

    async def list(self) -> list[ServerInfo]:
        def op(conn: Conn) -> list[ServerInfo]:
            return [ServerInfo(**dict(zip(r.keys(), r, strict=True)))
                    for r in conn.execute("SELECT * FROM servers ORDER BY name")]

        return await self.db.read(op)

    async def request_state(self, name: str, state: str | None) -> ServerInfo:
        def op(conn: Conn) -> ServerInfo:
            row = conn.execute("SELECT * FROM servers WHERE lower(name) = lower(?)", (name,)).fetchone()
            if row is None:
                raise NotFoundError(f"The transport server '{name}' has never run with this store")
            conn.execute("UPDATE servers SET requested_state = ? WHERE name = ?", (state, row["name"]))
            return ServerInfo(**{**dict(zip(row.keys(), row, strict=True)), "requested_state": state})

        return await self.db.write(op)

    async def active_by_owner(self) -> dict[str, int]:
        def op(conn: Conn) -> dict[str, int]:
            return {r[0]: int(r[1]) for r in conn.execute(
                "SELECT lease_owner, COUNT(*) FROM recipients WHERE status = 'active' GROUP BY lease_owner")}

        return await self.db.read(op)


class SqlTokens:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.db = engine
        self.clock = clock

    async def create(self, name: str, token_hash: str, scope: str) -> AdminToken:
        def op(conn: Conn) -> AdminToken:
            if conn.execute("SELECT 1 FROM admin_tokens WHERE lower(name) = lower(?)", (name,)).fetchone():
                raise ConflictError(f"A token named '{name}' already exists")
            now = self.clock.now()
            conn.execute("INSERT INTO admin_tokens (name, token_hash, read_only, scope, created_at) VALUES (?,?,?,?,?)",
                         (name, token_hash, int(scope == READ), scope, now))
            return AdminToken(name, scope, now)

        return await self.db.write(op)

    async def list(self) -> list[AdminToken]:
        def op(conn: Conn) -> list[AdminToken]:
            return [AdminToken(r["name"], r["scope"], r["created_at"])
                    for r in conn.execute("SELECT * FROM admin_tokens ORDER BY lower(name)")]

        return await self.db.read(op)

    async def delete(self, name: str) -> None:
        def op(conn: Conn) -> None:
            if conn.execute("DELETE FROM admin_tokens WHERE lower(name) = lower(?)", (name,)).rowcount == 0:
                raise NotFoundError(f"There is no token named '{name}'")

        await self.db.write(op)

    async def by_hash(self, token_hash: str) -> AdminToken | None:
        def op(conn: Conn) -> AdminToken | None:
            r = conn.execute("SELECT * FROM admin_tokens WHERE token_hash = ?", (token_hash,)).fetchone()
            return AdminToken(r["name"], r["scope"], r["created_at"]) if r else None

        return await self.db.read(op)
