"""``mailhop sendmail``: the sendmail command line that applications, cron and PHP call.

    mailhop sendmail [-t] [-i | -oi] [-f SENDER] [-F NAME] [-v] [--] [RECIPIENT ...] < message

Its options and what it makes of the message are in ``receive.pickup``.  The message takes
the receive path of SMTP mail (stamp ``with local``, Message-ID and Date, DKIM signing,
routing, the commit) in the server running on the data directory, through its control
socket; with no server running, in this process, on the store (Postfix's maildrop): it is
committed, and sent when a server starts.  Exit status as sysexits.h: 0 queued, 64 a usage
error (no recipients, an unknown option), 65 a data error (an address, the size), 75 a
temporary failure (the store or the server could not take it: try again later).
"""

from __future__ import annotations

import base64
import getpass
import sys
from typing import NoReturn

import click

from mailhop.cli.main import Context, pass_ctx
from mailhop.errors import MailhopError, StoreError
from mailhop.receive.local import PICKUP, limits
from mailhop.receive.pickup import DataError, Usage, parse, prepare, read_message

EX_USAGE, EX_DATAERR, EX_TEMPFAIL = 64, 65, 75


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False,
                                 "help_option_names": ["--help"]})
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def sendmail(ctx: Context, argv: tuple[str, ...]) -> None:
    """The sendmail command of applications: the message on standard input.

    -t recipients from To/Cc/Bcc (Bcc removed); -i or -oi: a lone '.' does not end the message;
    -f SENDER; -F NAME; -v; --. Exit status: 0 queued, 64 usage, 65 data error, 75 try later.
    """
    try:
        o = parse(list(argv))
    except Usage as exc:
        _fail(EX_USAGE, str(exc))
    settings = ctx.settings
    user = getpass.getuser()
    try:
        data = read_message(sys.stdin.buffer, o.ignore_dots, limits(PICKUP).max_message_size or sys.maxsize)
        if not data.strip():
            _fail(EX_DATAERR, "the message is empty")
        message = prepare(o, data, settings.server.fqdn, user)
    except Usage as exc:
        _fail(EX_USAGE, str(exc))
    except DataError as exc:
        _fail(EX_DATAERR, str(exc))
    try:
        result = ctx.change("message.submit", lambda s: s.pickup.submit_one(message, "127.0.0.1", user),  # type: ignore[union-attr]
                            sender=message.sender, recipients=message.recipients,
                            content=base64.b64encode(message.content).decode("ascii"), user=user)
    except StoreError as exc:
        _fail(EX_TEMPFAIL, f"message not queued, try again later: {exc}")
    except MailhopError as exc:
        _fail(EX_DATAERR, str(exc))
    if result["Status"] != "Queued":
        _fail(EX_TEMPFAIL, f"message not queued, try again later: {result.get('Error')}")
    if o.verbose:
        click.echo(f"sendmail: queued as {result['InternalMessageId']} {result['MessageId']} for "
                   f"{', '.join(message.recipients)}", err=True)
    for r in result["Recipients"]:
        if r["Status"] != "Queued":
            click.echo(f"sendmail: {r['Address']}: {r['Error']}", err=True)


def _fail(code: int, message: str) -> NoReturn:
    click.echo(f"sendmail: {message}", err=True)
    raise SystemExit(code)
