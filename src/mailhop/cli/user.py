"""``mailhop user``: SMTP AUTH users of the receive connectors (hashed in [server] users_file)."""

from __future__ import annotations

from pathlib import Path

import click

from mailhop.cli.main import Context, pass_ctx
from mailhop.errors import ValidationError
from mailhop.receive.users import add_user, read_users, remove_user


@click.group()
def user() -> None:
    """Users who may authenticate to the receive connectors (and then relay)."""


@user.command("add")
@click.argument("name")
@click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Read the password from this file (first line) instead of prompting.")
@pass_ctx
def add(ctx: Context, name: str, password_file: Path | None) -> None:
    """Add NAME, or change its password."""
    if password_file is not None:
        try:
            lines = password_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ValidationError(f"--password-file: cannot read {password_file}: {exc.strerror}") from None
        password = lines[0].strip() if lines else ""
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    path = ctx.settings.server.users_path
    add_user(path, name, password)
    click.echo(f"User '{name}' saved in {path}.")


@user.command("list")
@pass_ctx
def list_(ctx: Context) -> None:
    """List user names (never passwords)."""
    for name in sorted(read_users(ctx.settings.server.users_path)):
        click.echo(name)


@user.command("remove")
@click.argument("name")
@pass_ctx
def remove(ctx: Context, name: str) -> None:
    """Remove NAME."""
    remove_user(ctx.settings.server.users_path, name)
    click.echo(f"User '{name}' removed.")
