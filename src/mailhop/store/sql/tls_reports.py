"""TLS reporting in SQL: session counts per day, domain and policy, and which reports were taken."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mailhop.delivery.tls_results import CountRow, DayCounts, SentReport, merge_failures
from mailhop.store.engine import Conn, Engine


class SqlTlsReports:
    def __init__(self, engine: Engine) -> None:
        self.db = engine

    async def add(self, rows: Sequence[CountRow]) -> None:
        def op(conn: Conn) -> None:
            for r in rows:
                key = (r.day, r.key.domain, r.policy_json)
                old = conn.execute("SELECT success, failures FROM tls_report_counts WHERE day = ? AND domain = ? "
                                   "AND policy = ?", key).fetchone()
                if old is None:
                    conn.execute("INSERT INTO tls_report_counts (day, domain, policy, success, failures) "
                                 "VALUES (?,?,?,?,?)", (*key, r.success, json.dumps(r.failures_json())))
                else:
                    failures = merge_failures(json.loads(old["failures"]), r.failures_json())
                    conn.execute("UPDATE tls_report_counts SET success = ?, failures = ? WHERE day = ? AND domain = ? "
                                 "AND policy = ?", (int(old["success"]) + r.success, json.dumps(failures), *key))

        if rows:
            await self.db.write(op)

    async def counts(self, day: str | None = None, domain: str | None = None) -> list[DayCounts]:
        def op(conn: Conn) -> list[DayCounts]:
            where, args = [], []
            if day is not None:
                where.append("day = ?")
                args.append(day)
            if domain is not None:
                where.append("domain = ?")
                args.append(domain.lower())
            sql = "SELECT day, domain, policy, success, failures FROM tls_report_counts"
            if where:
                sql += " WHERE " + " AND ".join(where)
            out: dict[tuple[str, str], DayCounts] = {}
            for row in conn.execute(sql + " ORDER BY day, domain, policy", tuple(args)):
                item = out.setdefault((row["day"], row["domain"]), DayCounts(row["day"], row["domain"]))
                item.policies.append((json.loads(row["policy"]), int(row["success"]), json.loads(row["failures"])))
            return list(out.values())

        return await self.db.read(op)

    async def claim(self, report: SentReport) -> bool:
        def op(conn: Conn) -> bool:
            if conn.execute("SELECT 1 FROM tls_reports_sent WHERE day = ? AND domain = ?",
                            (report.day, report.domain)).fetchone():
                return False
            conn.execute("INSERT INTO tls_reports_sent (day, domain, report_id, server, sent_at, destinations) "
                         "VALUES (?,?,?,?,?,?)", (report.day, report.domain, report.report_id, report.server,
                                                 report.sent_at, json.dumps(report.destinations)))
            return True

        return await self.db.write(op)

    async def update_sent(self, report: SentReport) -> None:
        await self.db.write(lambda conn: conn.execute(
            "UPDATE tls_reports_sent SET destinations = ? WHERE day = ? AND domain = ?",
            (json.dumps(report.destinations), report.day, report.domain)))

    async def prune(self, before_day: str) -> None:
        def op(conn: Conn) -> None:
            conn.execute("DELETE FROM tls_report_counts WHERE day < ?", (before_day,))
            conn.execute("DELETE FROM tls_reports_sent WHERE day < ?", (before_day,))

        await self.db.write(op)

    async def sent(self) -> list[SentReport]:
        def op(conn: Conn) -> list[SentReport]:
            return [_sent(r) for r in conn.execute("SELECT * FROM tls_reports_sent ORDER BY day, domain")]

        return await self.db.read(op)


def _sent(r: Any) -> SentReport:
    return SentReport(r["day"], r["domain"], r["report_id"], r["server"], float(r["sent_at"]),
                      json.loads(r["destinations"]))
