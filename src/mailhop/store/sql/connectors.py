"""Send connectors in SQL: one row each, the connector as Exchange-keyed JSON, its secret apart.

A row that no longer validates (a rule tightened by a later release, a hand-edited
database) is quarantined, not fatal: ``load`` returns it with the reason, ``list``
leaves it out, ``get`` refuses it with the reason, ``update`` hands it over
unvalidated so a change can repair it, ``delete`` removes it like any other.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from mailhop.clock import Clock
from mailhop.errors import ConflictError, NotFoundError, ValidationError
from mailhop.model.connector import SendConnector, from_exchange, to_exchange
from mailhop.store.base import ConnectorSet, QuarantinedConnector
from mailhop.store.engine import Conn, Engine, Row


class SqlConnectors:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.db = engine
        self.clock = clock

    async def load(self) -> ConnectorSet:
        def op(conn: Conn) -> ConnectorSet:
            valid, quarantined = [], []
            for row in conn.execute("SELECT guid, name, data FROM send_connectors ORDER BY lower(name)"):
                try:
                    valid.append(_connector(row))
                except (ValueError, TypeError) as exc:  # ValidationError is a ValueError
                    quarantined.append(QuarantinedConnector(row["name"], row["guid"], str(exc)))
            return ConnectorSet(tuple(valid), tuple(quarantined))

        return await self.db.read(op)

    async def list(self) -> list[SendConnector]:
        return list((await self.load()).valid)

    async def get(self, name: str) -> SendConnector:
        return await self.db.read(lambda conn: _parse(_row(conn, name)))

    async def create(self, connector: SendConnector, secret: str | None = None) -> None:
        def op(conn: Conn) -> None:
            if conn.execute("SELECT 1 FROM send_connectors WHERE lower(name) = lower(?)", (connector.name,)).fetchone():
                raise ConflictError(f"A send connector named '{connector.name}' already exists")
            conn.execute(
                "INSERT INTO send_connectors (guid, name, data, secret, changed_at) VALUES (?,?,?,?,?)",
                (connector.guid, connector.name, json.dumps(to_exchange(connector)), secret, self.clock.now()),
            )
            _bump_version(conn)

        await self.db.write(op)

    async def update(self, name: str, change: Callable[[SendConnector], SendConnector],
                     secret: str | None = None) -> SendConnector:
        def op(conn: Conn) -> SendConnector:
            row = _row(conn, name)
            try:
                current = _connector(row, check=False)
            except (ValueError, TypeError) as exc:  # ValidationError is a ValueError
                raise ValidationError(f"The send connector '{row['name']}' is quarantined and cannot be "
                                      f"changed ({exc}); remove it and create it again") from None
            updated = change(current)
            if updated.name.lower() != current.name.lower() and conn.execute(
                "SELECT 1 FROM send_connectors WHERE lower(name) = lower(?) AND guid != ?", (updated.name, current.guid)
            ).fetchone():
                raise ConflictError(f"A send connector named '{updated.name}' already exists")
            conn.execute(
                "UPDATE send_connectors SET name = ?, data = ?, secret = COALESCE(?, secret), "
                "changed_at = ? WHERE guid = ?",
                (updated.name, json.dumps(to_exchange(updated)), secret, self.clock.now(), current.guid),
            )
            _bump_version(conn)
            return updated

        return await self.db.write(op)

    async def delete(self, name: str) -> str:
        def op(conn: Conn) -> str:
            row = _row(conn, name)
            conn.execute("DELETE FROM send_connectors WHERE guid = ?", (row["guid"],))
            _bump_version(conn)
            return str(row["name"])

        return await self.db.write(op)

    async def secret(self, guid: str) -> str | None:
        def op(conn: Conn) -> str | None:
            row = conn.execute("SELECT secret FROM send_connectors WHERE guid = ?", (guid,)).fetchone()
            return row["secret"] if row else None

        return await self.db.read(op)

    async def version(self) -> int:
        def op(conn: Conn) -> int:
            row = conn.execute("SELECT value FROM meta WHERE key = 'config_version'").fetchone()
            return int(row["value"])

        return await self.db.read(op)


def _row(conn: Conn, name: str) -> Row:
    row = conn.execute(
        "SELECT guid, name, data FROM send_connectors WHERE lower(name) = lower(?) OR guid = ?",
        (name.strip(), name.strip()),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"The send connector '{name}' was not found")
    return row  # type: ignore[no-any-return]


def _connector(row: Row, check: bool = True) -> SendConnector:
    """The row's connector; its guid column is the truth (the JSON may lack it)."""
    return from_exchange({**json.loads(row["data"]), "Guid": row["guid"]}, check=check)


def _parse(row: Row) -> SendConnector:
    try:
        return _connector(row)
    except (ValueError, TypeError) as exc:  # ValidationError is a ValueError
        raise ValidationError(f"The send connector '{row['name']}' is quarantined: {exc}") from None


def _bump_version(conn: Conn) -> None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'config_version'").fetchone()
    conn.execute("UPDATE meta SET value = ? WHERE key = 'config_version'", (str(int(row[0]) + 1),))
