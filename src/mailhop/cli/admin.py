"""``mailhop admin token``: tokens of the admin API and console."""

from __future__ import annotations

import click

from mailhop.cli.main import Context, pass_ctx
from mailhop.cli.output import emit, table


@click.group()
def admin() -> None:
    """The admin API and web console."""


@admin.group()
def token() -> None:
    """Tokens that open the admin API (stored hashed; shown once)."""


@token.command("create")
@click.argument("name")
@click.option("--read-only", is_flag=True, help="May read everything, change nothing.")
@pass_ctx
def create(ctx: Context, name: str, read_only: bool) -> None:
    """Create a token and print it (this is the only time it is shown)."""
    made = ctx.change("token.create", lambda s: s.tokens.create(name, read_only), name=name, read_only=read_only)
    click.echo(made["Token"])
    click.echo(f"Token '{made['Name']}' ({'read-only' if made['ReadOnly'] else 'full control'}) created; "
               "it is not shown again.", err=True)


@token.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def list_(ctx: Context, as_json: bool) -> None:
    """Token names and rights (never the tokens)."""
    rows = ctx.read(lambda s: s.tokens.list())
    emit(rows, as_json, table(rows, ("Name", "ReadOnly", "Created")))


@token.command("remove")
@click.argument("name")
@pass_ctx
def remove(ctx: Context, name: str) -> None:
    """Revoke a token, and the console sessions opened with it."""
    ctx.change("token.remove", lambda s: s.tokens.remove(name), name=name)
    click.echo(f"Token '{name}' removed.")
