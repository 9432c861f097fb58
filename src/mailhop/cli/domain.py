"""``mailhop domain check``: whether Gmail, Yahoo and Microsoft will take mail from a domain.

A read: it runs in the CLI process (``services.readiness`` over the store and the
configured DNS servers), whether or not a server runs.  Exit status 1 when a check
fails (after the report is printed).
"""

from __future__ import annotations

from typing import Any

import click

from mailhop.cli.main import Context, pass_ctx
from mailhop.cli.output import emit, format_list, table

COLUMNS = ("Check", "Address", "Result", "Evidence", "Fix")


def _human(report: dict[str, Any]) -> str:
    head = format_list({"Domain": report["Domain"], "SendingIps": report["SendingIps"],
                        "SendingIpsFrom": report["SendingIpsFrom"], "Result": report["Result"]})
    return head + "\n\n" + table(report["Checks"], COLUMNS)


@click.group()
def domain() -> None:
    """Sending domains: what receivers check before they take their mail."""


@domain.command("check")
@click.argument("name", metavar="DOMAIN")
@click.option("--ip", "ips", multiple=True, metavar="ADDR",
              help="A sending address (repeatable; default [server] outbound_ips, else the smart hosts').")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def check(ctx: Context, name: str, ips: tuple[str, ...], as_json: bool) -> None:
    """SPF, DKIM, DMARC, reverse DNS, MTA-STS and TLS-RPT of DOMAIN: Pass, Warn or Fail, with the fix."""
    report = ctx.read(lambda s: s.readiness.check(name, list(ips) or None))
    emit(report, as_json, _human(report))
    if report["Result"] == "Fail":
        raise SystemExit(1)
