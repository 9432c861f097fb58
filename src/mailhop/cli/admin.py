"""``mailhop admin token``: tokens of the admin API and console."""

from __future__ import annotations

import click

from mailhop.cli.main import Context, pass_ctx
from mailhop.cli.output import emit, table
from mailhop.store.base import FULL, READ, SCOPES, SUBMIT


@click.group()
def admin() -> None:
    """The admin API and web console."""


@admin.group()
def token() -> None:
    """Tokens that open the admin API (stored hashed; shown once)."""


SCOPE_TEXT = {FULL: "full control", READ: "read-only", SUBMIT: "may submit messages, nothing else"}


@token.command("create")
@click.argument("name")
@click.option("--scope", type=click.Choice(SCOPES), default=None,
              help="full (the default): everything; read: read only; submit: POST /api/messages only.")
@click.option("--read-only", is_flag=True, help="The same as --scope read.")
@pass_ctx
def create(ctx: Context, name: str, scope: str | None, read_only: bool) -> None:
    """Create a token and print it (this is the only time it is shown)."""
    if read_only and scope not in (None, READ):
        raise click.UsageError("--read-only and --scope are contradictory")
    chosen = READ if read_only else scope or FULL
    made = ctx.change("token.create", lambda s: s.tokens.create(name, chosen), name=name, scope=chosen)
    click.echo(made["Token"])
    click.echo(f"Token '{made['Name']}' ({SCOPE_TEXT[made['Scope']]}) created; it is not shown again.", err=True)


@token.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def list_(ctx: Context, as_json: bool) -> None:
    """Token names and rights (never the tokens)."""
    rows = ctx.read(lambda s: s.tokens.list())
    emit(rows, as_json, table(rows, ("Name", "Scope", "Created")))


@token.command("remove")
@click.argument("name")
@pass_ctx
def remove(ctx: Context, name: str) -> None:
    """Revoke a token, and the console sessions opened with it."""
    ctx.change("token.remove", lambda s: s.tokens.remove(name), name=name)
    click.echo(f"Token '{name}' removed.")
