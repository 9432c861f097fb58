"""``mailhop tls explain``: which TLS policy applies to each MX host of a domain, and why."""

from __future__ import annotations

from typing import Any

import click

from mailhop.cli.main import Context, pass_ctx
from mailhop.cli.output import emit
from mailhop.cli.output import table as format_table


@click.group()
def tls() -> None:
    """Transport security of outbound mail (DANE, MTA-STS, connector TLS)."""


def _text(data: dict[str, Any]) -> str:
    lines = [f"Domain        : {data['Domain']}",
             f"Connector     : {data['Connector']} (SmtpDaneMode {data['SmtpDaneMode']}, "
             f"MtaStsMode {data['MtaStsMode']}, RequireTLS {data['RequireTLS']})",
             f"DNSSEC        : {data['Dnssec']}"]
    sts = data.get("MtaSts")
    if sts:
        lines.append(f"MTA-STS       : id {sts['PolicyId']}, mode {sts['Mode']}, mx {', '.join(sts['Mx']) or '-'}, "
                     f"max_age {sts['MaxAge']}, age {sts['AgeSeconds']}s" + (f", error: {sts['Error']}"
                                                                            if sts["Error"] else ""))
    if data.get("Error"):
        lines.append(f"Error         : {data['Error']}")
    for h in data["Hosts"]:
        lines += ["", f"{h['Host']}:{h['Port']} ({', '.join(h['Addresses'])})  DNSSEC "
                      f"{'secure' if h['DnssecSecure'] else 'insecure'}",
                  f"  Policy      : {h['Policy']}", f"  Why         : {h['Why']}",
                  f"  Requires    : {h['Requires']}"]
        if h["Tlsa"]:
            lines.append(f"  TLSA        : {'; '.join(h['Tlsa'])}")
        lines.append(f"  Refused     : {h['Refused']}" if h["Refused"] else f"  Fails when  : {h['FailsWhen']}")
    return "\n".join(lines)


@tls.command("explain")
@click.argument("domain")
@click.option("--connector", default=None, help="Explain for this send connector instead of the one routing picks.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def explain(ctx: Context, domain: str, connector: str | None, as_json: bool) -> None:
    """Show the TLS policy each MX host of DOMAIN gets right now, and why."""
    data = ctx.read(lambda s: s.tls.explain(domain, connector))
    emit(data, as_json, _text(data))


@tls.group("report")
def report() -> None:
    """TLS reports (RFC 8460): the sessions counted per domain and day, and their sending."""


@report.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def report_list(ctx: Context, as_json: bool) -> None:
    """Each domain and UTC day with counted sessions, and whether its report was sent."""
    rows = ctx.change("tls.report_list", lambda s: s.tls_reports.days())
    summary = [{"Date": r["Date"], "Domain": r["Domain"], "Successful": r["SuccessfulSessions"],
              "Failed": r["FailedSessions"], "Policies": ",".join(sorted(set(r["Policies"]))),
              "Sent": "; ".join(f"{k} {v}" for k, v in r["Destinations"].items()) if r["ReportId"] else "-"}
             for r in rows]
    emit(rows, as_json, format_table(summary, ["Date", "Domain", "Successful", "Failed", "Policies", "Sent"]))


@report.command("show")
@click.argument("domain")
@click.option("--date", "day", default=None, metavar="YYYY-MM-DD", help="UTC day (default today).")
@pass_ctx
def report_show(ctx: Context, domain: str, day: str | None) -> None:
    """The report of DOMAIN for a day, as RFC 8460 JSON (what is, or would be, sent)."""
    data = ctx.change("tls.report_show", lambda s: s.tls_reports.show(domain, day), domain=domain, date=day)
    emit(data, True, "")


@report.command("send")
@click.option("--now", is_flag=True, help="Send today's reports too, so far (default: finished days only).")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def report_send(ctx: Context, now: bool, as_json: bool) -> None:
    """Send the reports that are due (each domain and day once, across a cluster)."""
    results = ctx.change("tls.report_send", lambda s: s.tls_reports.send(now), now=now)
    lines = []
    for r in results:
        where = "; ".join(f"{k}: {v}" for k, v in r["Destinations"].items())
        lines.append(f"{r['Date']} {r['Domain']}: {r.get('Error') or where}")
    emit(results, as_json, "\n".join(lines) or "no report is due")
