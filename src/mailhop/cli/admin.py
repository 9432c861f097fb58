"""``mailhop admin token``: tokens of the admin API and console."""

from __future__ import annotations

import click

from mailhop.admin.auth import new_token, token_hash
from mailhop.cli.main import Context, pass_ctx
from mailhop.cli.output import emit, table
from mailhop.store import Store
from mailhop.store.base import AdminToken
from mailhop.tracking.log import iso


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
    secret = new_token()

    async def run(store: Store) -> AdminToken:
        return await store.tokens.create(name, token_hash(secret), read_only)

    made = ctx.with_store(run)
    click.echo(secret)
    click.echo(f"Token '{made.name}' ({'read-only' if made.read_only else 'full control'}) created; "
               "it is not shown again.", err=True)


@token.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def list_(ctx: Context, as_json: bool) -> None:
    """Token names and rights (never the tokens)."""
    found = ctx.with_store(lambda store: store.tokens.list())
    rows = [{"Name": t.name, "ReadOnly": t.read_only, "Created": iso(t.created_at)} for t in found]
    emit(rows, as_json, table(rows, ("Name", "ReadOnly", "Created")))


@token.command("remove")
@click.argument("name")
@pass_ctx
def remove(ctx: Context, name: str) -> None:
    """Revoke a token, and the console sessions opened with it."""
    ctx.with_store(lambda store: store.tokens.delete(name))
    click.echo(f"Token '{name}' removed.")
