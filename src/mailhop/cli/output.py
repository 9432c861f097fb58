"""Output the way an Exchange administrator reads it: PowerShell's tables and lists, or JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click


def ps_value(value: Any) -> str:
    """A value as PowerShell's default formatter shows it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, list | tuple):
        return "{" + ", ".join(ps_value(v) for v in value) + "}"
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Format-Table: a header, a dashed rule, one line per row; columns as wide as their content."""
    cells = [[ps_value(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    def line(values: Sequence[str]) -> str:
        return " ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()
    out = [line(columns), line(["-" * len(c) for c in columns])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def format_list(obj: dict[str, Any]) -> str:
    """Format-List: one ``Name : value`` line per property."""
    width = max((len(k) for k in obj), default=0)
    return "\n".join(f"{k.ljust(width)} : {ps_value(v)}" for k, v in obj.items())


def emit(data: Any, as_json: bool, human: str) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        click.echo(human)
