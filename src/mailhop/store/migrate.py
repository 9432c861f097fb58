"""Schema migrations: numbered ``.sql`` files per engine under ``store/migrations/<dialect>``.

A store records the number of the last file applied (``meta.schema_version``); the
files above it run in order, each statement as written, inside the writer's first
transaction, so a store is either migrated completely or not at all.
"""

from __future__ import annotations

from importlib import resources

from mailhop.store.engine import Conn, Dialect


def migrations(folder: str) -> list[tuple[int, str]]:
    root = resources.files("mailhop.store").joinpath("migrations", folder)
    out = []
    for entry in root.iterdir():
        if entry.name.endswith(".sql"):
            out.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(out)


def split_sql(sql: str) -> list[str]:
    """Statements of a migration file: split at semicolons that end a line."""
    statements, current = [], []
    for line in sql.splitlines():
        if line.strip().startswith("--"):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current).strip().rstrip(";"))
            current = []
    if "".join(current).strip():
        statements.append("\n".join(current).strip())
    return statements


def migrate(conn: Conn, dialect: Dialect) -> None:
    version = dialect.schema_version(conn)
    for number, sql in migrations(dialect.name):
        if number > version:
            for statement in split_sql(sql):
                conn.execute(statement)
            conn.execute("DELETE FROM meta WHERE key = 'schema_version'")
            conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(number),))
