"""``mailhop headers analyze``: the path and delays of a message from its pasted headers.

The counterpart of Microsoft's Message Header Analyzer, offline.  A file that cannot
be read is a ``ValidationError`` (one line, exit 1); odd headers are never an error,
they show up as warnings (see mailhop.headers.analyzer).
"""

from __future__ import annotations

import sys

import click

from mailhop.cli.output import emit, format_list, table
from mailhop.errors import ValidationError
from mailhop.headers.analyzer import CLOCK_SKEW, Analysis, Hop, analyze

COLUMNS = ("Hop", "Delay", "From", "By", "With", "TLS", "Time")
BAR_WIDTH = 40


@click.group()
def headers() -> None:
    """Message headers."""


@headers.command("analyze")
@click.argument("source", metavar="FILE|-")
@click.option("--json", "as_json", is_flag=True)
def analyze_command(source: str, as_json: bool) -> None:
    """Trace a message through its Received: headers: hops, delays, TLS, clock skew.

    FILE holds the headers (a whole .eml, or the text of Outlook's "Internet headers"
    box); - reads them from standard input.
    """
    analysis = analyze(_read(source))
    emit(analysis.to_json(), as_json, render(analysis))


def render(analysis: Analysis) -> str:
    """The human report: message fields, the hop table, total delay, delay bars, warnings."""
    parts: list[str] = []
    fields = {"Subject": analysis.subject, "From": analysis.sender, "To": analysis.to,
              "MessageId": analysis.message_id, "Date": analysis.date}
    present = {k: v for k, v in fields.items() if v is not None}
    if present:
        parts.append(format_list(present))
    if analysis.hops:
        parts.append(table([_row(hop) for hop in analysis.hops], COLUMNS))
        parts.append(f"Total delay: {duration(analysis.total_delay) or 'unknown'}")
        parts.append("Delays:\n" + bars(analysis.hops))
    else:
        parts.append("No Received: headers.")
    if analysis.warnings:
        parts.append("Warnings:\n" + "\n".join(f"  {w}" for w in analysis.warnings))
    return "\n\n".join(parts)


def bars(hops: tuple[Hop, ...]) -> str:
    """One line per hop, '#' scaled to the longest delay; negative and unknown delays get none."""
    longest = max((h.delay for h in hops if h.delay is not None and h.delay > 0), default=0.0)
    width = len(str(len(hops)))
    lines = []
    for hop in hops:
        delay = hop.delay if hop.delay is not None else 0.0
        # Any positive delay gets at least one '#', so a short wait still shows.
        n = max(1, round(delay / longest * BAR_WIDTH)) if delay > 0 and longest else 0
        label = (duration(hop.delay) or "-") + (" (clock skew)" if CLOCK_SKEW in hop.flags else "")
        lines.append(f"  {str(hop.number).rjust(width)} |{'#' * n}{' ' * (BAR_WIDTH - n)}| {label}")
    return "\n".join(lines)


def duration(seconds: float | None) -> str:
    """12s, 3m 5s, 2h 0m, 1d 4h; negative with a leading '-'; '' when unknown."""
    if seconds is None:
        return ""
    sign = "-" if seconds < 0 else ""
    s = round(abs(seconds))
    if s < 60:
        return f"{sign}{s}s"
    if s < 3600:
        return f"{sign}{s // 60}m {s % 60}s"
    if s < 86400:
        return f"{sign}{s // 3600}h {s % 3600 // 60}m"
    return f"{sign}{s // 86400}d {s % 86400 // 3600}h"


def _row(hop: Hop) -> dict[str, object]:
    h = hop.header
    sender = " ".join(p for p in (h.from_host, f"[{h.from_ip}]" if h.from_ip else None) if p)
    version = (h.tls_detail or "").split(" ", 1)[0]
    tls = ("No" if not h.tls else version if version.startswith(("TLS", "SSL")) else "Yes")
    return {
        "Hop": hop.number,
        "Delay": duration(hop.delay),
        "From": sender,
        "By": h.by_host or h.by_ip,
        "With": h.protocol,
        "TLS": tls,
        "Time": h.timestamp.isoformat(sep=" ") if h.timestamp else None,
    }


def _read(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        with open(source, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ValidationError(f"{source}: no such file") from None
    except OSError as exc:
        raise ValidationError(f"cannot read {source}: {exc.strerror or exc}") from None
