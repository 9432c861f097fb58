"""``mailhop connector``: New-, Get-, Set- and Remove-SendConnector.

The options come from the connector property table (``model.connector.PROPERTIES``),
so the CLI, the JSON and the API can never disagree on a name or a rule.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mailhop.cli.main import Context, pass_ctx
from mailhop.cli.output import emit, format_list, table
from mailhop.errors import ValidationError
from mailhop.model.connector import PROPERTIES, SendConnector, from_exchange, to_exchange

LIST_COLUMNS = ("Identity", "AddressSpaces", "Enabled")


def _ps_row(c: SendConnector) -> dict[str, Any]:
    return {"Identity": c.name, "AddressSpaces": [str(s) for s in c.address_spaces], "Enabled": c.enabled}


def _ps_object(c: SendConnector) -> dict[str, Any]:
    data = to_exchange(c)
    data["AddressSpaces"] = [str(s) for s in c.address_spaces]
    return data


def property_options(creating: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for prop in reversed(PROPERTIES):
            if prop.exchange == "Name" and creating:
                continue
            if not prop.settable and not creating:
                continue
            help_text = f"{prop.exchange}: {prop.doc}"
            if prop.exchange == "Name":
                help_text = "Rename the connector."
            param = "new_name" if prop.exchange == "Name" else prop.attr
            fn = click.option(prop.option, param, metavar="VALUE", help=help_text)(fn)
        fn = click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path),
                          help="File holding the smart-host password (with --authentication-credential).")(fn)
        return fn
    return decorate


def _given(kwargs: dict[str, Any]) -> dict[str, Any]:
    by_attr = {p.attr: p.exchange for p in PROPERTIES} | {"new_name": "Name"}
    return {by_attr[k]: v for k, v in kwargs.items() if k in by_attr and v is not None}


def _secret(password_file: Path | None) -> str | None:
    if password_file is None:
        return None
    try:
        text = password_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(f"--password-file: cannot read {password_file}: {exc.strerror}") from None
    secret = text.splitlines()[0].strip() if text.strip() else ""
    if not secret:
        raise ValidationError(f"--password-file: {password_file} is empty")
    return secret


@click.group()
def connector() -> None:
    """Send connectors (New/Get/Set/Remove-SendConnector)."""


@connector.command("new")
@click.argument("name")
@property_options(creating=True)
@pass_ctx
def new(ctx: Context, /, name: str, password_file: Path | None, **kwargs: Any) -> None:
    """Create a send connector (New-SendConnector)."""
    values = {"Name": name, **_given(kwargs)}
    secret = _secret(password_file)
    hint = "--password-file FILE"
    created = ctx.change("connector.create", lambda s: s.connectors.create(values, secret, hint),
                         values=values, secret=secret, secret_hint=hint)
    click.echo(table([_ps_row(from_exchange(created))], LIST_COLUMNS))


@connector.command("list")
@click.option("--json", "as_json", is_flag=True, help="Objects keyed by Exchange's property names.")
@pass_ctx
def list_(ctx: Context, as_json: bool) -> None:
    """List send connectors (Get-SendConnector); quarantined ones with the reason."""
    found = ctx.read(lambda s: s.connectors.list())
    valid = [from_exchange(c) for c in found if not c.get("Quarantined")]
    quarantined = [c for c in found if c.get("Quarantined")]
    rows = [_ps_row(c) for c in valid] + [
        {"Identity": q["Identity"], "AddressSpaces": [], "Enabled": "Quarantined"} for q in quarantined]
    human = table(rows, LIST_COLUMNS) if rows else ""
    for q in quarantined:
        human += f"\nQuarantined: '{q['Identity']}': {q['QuarantineReason']}"
    emit(found, as_json, human)


@connector.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def show(ctx: Context, name: str, as_json: bool) -> None:
    """Show one send connector with all its properties (Get-SendConnector | Format-List)."""
    data = ctx.read(lambda s: s.connectors.get(name))
    emit(data, as_json, format_list(_ps_object(from_exchange(data))))


@connector.command("set")
@click.argument("name")
@property_options(creating=False)
@pass_ctx
def set_(ctx: Context, /, name: str, password_file: Path | None, **kwargs: Any) -> None:
    """Change a send connector (Set-SendConnector)."""
    values = _given(kwargs)
    secret = _secret(password_file)
    if not values and secret is None:
        raise click.UsageError("nothing to change: give at least one option")
    updated = ctx.change("connector.update", lambda s: s.connectors.update(name, values, secret),
                         name=name, values=values, secret=secret)
    click.echo(table([_ps_row(from_exchange(updated))], LIST_COLUMNS))


@connector.command("remove")
@click.argument("name")
@pass_ctx
def remove(ctx: Context, name: str) -> None:
    """Delete a send connector (Remove-SendConnector); its queued mail is routed again."""
    removed = ctx.change("connector.remove", lambda s: s.connectors.remove(name), name=name)
    click.echo(f"Removed send connector '{removed}'.")
