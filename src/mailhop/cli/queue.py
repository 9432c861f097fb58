"""``mailhop queue``: Get-Queue, Get-Message, Retry-Queue, Suspend/Resume, Remove-Message."""

from __future__ import annotations

import click

from mailhop.cli.main import Context, pass_ctx
from mailhop.cli.output import emit, table
from mailhop.errors import ValidationError

QUEUE_COLUMNS = ("Identity", "DeliveryType", "Status", "MessageCount", "NextHopDomain", "NextRetryTime", "LastError")
MESSAGE_COLUMNS = ("Identity", "FromAddress", "Status", "Size", "Queue", "Subject", "LastError")

json_option = click.option("--json", "as_json", is_flag=True, help="Objects keyed by Exchange's property names.")


@click.group()
def queue() -> None:
    """Queues and the messages in them (Get-Queue, Get-Message and friends)."""


@queue.command("list")
@json_option
@pass_ctx
def list_(ctx: Context, as_json: bool) -> None:
    """List queues with their status, size and last error (Get-Queue)."""
    queues = ctx.read(lambda s: s.queues.list_queues())
    emit(queues, as_json, table(queues, QUEUE_COLUMNS))


@queue.command("messages")
@click.option("--queue", "queue_id", metavar="QUEUE", help="Only this queue (name or SERVER\\name).")
@click.option("--result-size", default=1000, show_default=True, type=click.IntRange(min=1))
@json_option
@pass_ctx
def messages(ctx: Context, queue_id: str | None, result_size: int, as_json: bool) -> None:
    """List queued messages (Get-Message)."""
    found = ctx.read(lambda s: s.queues.list_messages(queue_id, result_size))
    rows = [{**m, "Size": f"{m['Size'] / 1024:.1f} KB"} for m in found]
    emit(found, as_json, table(rows, MESSAGE_COLUMNS))


def _message_id(value: str) -> int:
    tail = value.rsplit("\\", 1)[-1].strip()
    if not tail.isdigit():
        raise ValidationError(f"'{value}' is not a message identity (the number 'queue messages' shows)")
    return int(tail)


@queue.command("retry")
@click.argument("queue_id", metavar="QUEUE")
@json_option
@pass_ctx
def retry(ctx: Context, queue_id: str, as_json: bool) -> None:
    """Try a queue now, resetting its retry timer (Retry-Queue)."""
    result = ctx.change("queue.retry", lambda s: s.queues.retry(queue_id), identity=queue_id)
    emit(result, as_json, f"Queue '{result['Identity']}': {result['RecipientsRetried']} recipient(s) will be tried now.")


def _suspend_or_resume(ctx: Context, queue_id: str | None, message: str | None, suspend: bool, as_json: bool) -> None:
    verb = "suspended" if suspend else "resumed"
    if (queue_id is None) == (message is None):
        raise click.UsageError("give either a QUEUE or --message ID")
    if message is not None:
        mid = _message_id(message)
        count = ctx.change("message.suspend", lambda s: s.queues.set_message_suspended(mid, suspend),
                           message_id=mid, suspended=suspend)
        emit({"Identity": mid, "Status": verb.capitalize(), "Recipients": count}, as_json,
             f"Message {mid}: {count} recipient(s) {verb}.")
        return
    assert queue_id is not None
    name = ctx.change("queue.suspend", lambda s: s.queues.set_queue_suspended(queue_id, suspend),
                      identity=queue_id, suspended=suspend)
    emit({"Identity": name, "Status": "Suspended" if suspend else "Ready"}, as_json, f"Queue '{name}' {verb}.")


@queue.command("suspend")
@click.argument("queue_id", metavar="QUEUE", required=False)
@click.option("--message", metavar="ID", help="Suspend one message instead of a queue.")
@json_option
@pass_ctx
def suspend(ctx: Context, queue_id: str | None, message: str | None, as_json: bool) -> None:
    """Stop delivery from a queue or of one message (Suspend-Queue / Suspend-Message)."""
    _suspend_or_resume(ctx, queue_id, message, True, as_json)


@queue.command("resume")
@click.argument("queue_id", metavar="QUEUE", required=False)
@click.option("--message", metavar="ID", help="Resume one message (also takes it out of Poison).")
@json_option
@pass_ctx
def resume(ctx: Context, queue_id: str | None, message: str | None, as_json: bool) -> None:
    """Resume a suspended queue or message (Resume-Queue / Resume-Message)."""
    _suspend_or_resume(ctx, queue_id, message, False, as_json)


@queue.command("remove")
@click.option("--message", metavar="ID", required=True, help="The message to delete.")
@click.option("--ndr", is_flag=True, help="Send the sender an NDR (550 4.3.2 QUEUE.Admin).")
@json_option
@pass_ctx
def remove(ctx: Context, message: str, ndr: bool, as_json: bool) -> None:
    """Delete a message from every queue (Remove-Message)."""
    mid = _message_id(message)
    result = ctx.change("message.remove", lambda s: s.queues.remove_message(mid, ndr), message_id=mid, ndr=ndr)
    human = f"Message {mid} removed ({len(result['Removed'])} recipient(s))" + (", NDR sent." if result["NdrSent"] else ".")
    emit(result, as_json, human)
