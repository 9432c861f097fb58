"""``mailhop server`` (Get-TransportService, Set-ServerComponentState) and ``mailhop db``."""

from __future__ import annotations

from typing import Any

import click

from mailhop.cli.main import Context, pass_ctx
from mailhop.cli.output import emit, table
from mailhop.store import Store, open_url
from mailhop.store.copy import copy_store

COLUMNS = ("Name", "State", "LastHeartbeat", "ActiveRecipients", "QueuedMessages", "Fqdn")


@click.group()
def server() -> None:
    """Transport servers that share this store."""


@server.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def list_(ctx: Context, as_json: bool) -> None:
    """Each server, its last heartbeat, state and how much mail it holds."""
    found = ctx.read(lambda s: s.servers.list())
    emit(found, as_json, table(found, COLUMNS))


@server.command("drain")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def drain(ctx: Context, name: str, as_json: bool) -> None:
    """Move NAME's work to the other servers before maintenance (HubTransport Draining)."""
    result = ctx.change("server.request_state", lambda s: s.servers.request_state(name, True), name=name,
                        draining=True)
    emit(result, as_json, f"{result['Name']} will stop accepting and claiming mail within a few seconds.")


@server.command("resume")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def resume(ctx: Context, name: str, as_json: bool) -> None:
    """Let a drained server accept and deliver mail again."""
    result = ctx.change("server.request_state", lambda s: s.servers.request_state(name, False), name=name,
                        draining=False)
    emit(result, as_json, f"{result['Name']} will accept and deliver mail again within a few seconds.")


@click.group()
def db() -> None:
    """The store's schema and contents."""


@db.command("upgrade")
@pass_ctx
def upgrade(ctx: Context) -> None:
    """Apply the schema migrations the store is missing (also done when a server starts)."""
    async def run(store: Store) -> None:
        return None

    ctx.with_store(run)
    click.echo(f"The store ({_describe(ctx.settings.server.store)}) is up to date.")


@db.command("migrate")
@click.option("--from", "source", required=True, metavar="URL", help="sqlite:PATH or postgresql://...")
@click.option("--to", "target", required=True, metavar="URL", help="postgresql://... (or sqlite:PATH)")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def migrate(ctx: Context, source: str, target: str, as_json: bool) -> None:
    """Copy send connectors, queue states and queued mail into an empty store.

    Stop the servers that use the source first: mail they accept meanwhile would not be copied.
    """
    import asyncio

    async def run() -> dict[str, Any]:
        src = await open_url(source, str(ctx.settings.sqlite_path))
        try:
            dst = await open_url(target, str(ctx.settings.sqlite_path))
            try:
                return await copy_store(src, dst)
            finally:
                await dst.close()
        finally:
            await src.close()

    result = asyncio.run(run())
    emit(result, as_json, f"Copied {result['Connectors']} connector(s), {result['DkimSigningConfigs']} DKIM "
                          f"signing config(s), {result['Messages']} message(s) "
                          f"and {result['QueueStates']} queue state(s) to {_describe(target)}.")


def _describe(url: str) -> str:
    return url.split("@")[-1] if url.startswith("postgres") else url
