"""``mailhop track``: search the message tracking log (Get-MessageTrackingLog)."""

from __future__ import annotations

import click

from mailhop.cli.main import Context, pass_ctx
from mailhop.cli.output import emit, table
from mailhop.tracking.log import tracking_dir
from mailhop.tracking.search import Query, parse_time, search

COLUMNS = ("Timestamp", "EventId", "Source", "Sender", "Recipients", "MessageSubject")


@click.command()
@click.option("--sender", help="Envelope sender.")
@click.option("--recipient", "--recipients", "recipient", help="One of the recipients.")
@click.option("--message-id", help="The Message-ID header (with or without <>).")
@click.option("--internal-message-id", type=int, help="mailhop's id ('queued as' in the 250 reply).")
@click.option("--event", "--event-id", "event", help="RECEIVE, SEND, DEFER, FAIL, DSN, POISONMESSAGE ...")
@click.option("--subject", "--message-subject", "subject", help="Subject contains this text.")
@click.option("--start", help="From this time (ISO 8601, or a duration ago like 2h).")
@click.option("--end", help="Up to this time.")
@click.option("--result-size", default=1000, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def track(ctx: Context, sender: str | None, recipient: str | None, message_id: str | None,
          internal_message_id: int | None, event: str | None, subject: str | None, start: str | None,
          end: str | None, result_size: int, as_json: bool) -> None:
    """Search the message tracking log, oldest first (Get-MessageTrackingLog)."""
    query = Query(sender=sender, recipient=recipient, message_id=message_id,
                  internal_message_id=internal_message_id, event=event, subject=subject,
                  start=parse_time(start, ctx.clock.now()) if start else None,
                  end=parse_time(end, ctx.clock.now()) if end else None,
                  limit=result_size)
    found = search(tracking_dir(ctx.settings.data_dir), query)
    emit(found, as_json, table(found, COLUMNS))
