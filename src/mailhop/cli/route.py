"""``mailhop route explain``: the routing decision for a recipient, without sending anything."""

from __future__ import annotations

import click

from mailhop.cli.main import Context, pass_ctx
from mailhop.cli.output import emit, format_list


@click.group()
def route() -> None:
    """Routing decisions."""


@route.command("explain")
@click.argument("recipient")
@click.option("--sender", default="", help="Envelope sender (sender-based routing).")
@click.option("--size", default=0, type=click.IntRange(min=0), help="Message size in bytes.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def explain(ctx: Context, recipient: str, sender: str, size: int, as_json: bool) -> None:
    """Show which send connector RECIPIENT's mail would take, and why."""
    if "@" not in recipient:
        raise click.BadParameter(f"'{recipient}' is not an email address", param_hint="RECIPIENT")
    data = ctx.read(lambda s: s.routing.explain(recipient, sender, size))
    emit(data, as_json, format_list(data))
