"""The ``mailhop`` command line.

Every command takes ``--config FILE`` (default ``./mailhop.toml``; embedded
defaults when it is absent).  Errors are one line on stderr and exit status 1;
set ``MAILHOP_DEBUG=1`` to see the traceback of an unexpected error.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from mailhop import __version__
from mailhop.clock import SYSTEM_CLOCK, Clock
from mailhop.config import Settings, load
from mailhop.errors import ConfigError, MailhopError
from mailhop.services import Services, control
from mailhop.services.local import local_services
from mailhop.store import Store, open_store

T = TypeVar("T")


class Context:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._settings: Settings | None = None
        self.overrides: dict[str, Any] = {}
        self.clock: Clock = SYSTEM_CLOCK

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load(self.config_path, overrides=self.overrides)
        return self._settings

    def with_store(self, fn: Callable[[Store], Awaitable[T]]) -> T:
        async def run() -> T:
            store = await open_store(self.settings, self.clock)
            try:
                return await fn(store)
            finally:
                await store.close()

        return asyncio.run(run())

    def read(self, fn: Callable[[Services], Awaitable[T]]) -> T:
        """A query, answered from the store by the same services the server runs."""
        async def run() -> T:
            async with local_services(self.settings, self.clock) as services:
                return await fn(services)

        return asyncio.run(run())

    def change(self, op: str, fn: Callable[[Services], Awaitable[T]], **args: Any) -> T:
        """A change: done by the server running on this data directory (the control socket,
        operation ``op`` with ``args``), or by ``fn`` on the store when none runs."""
        async def run() -> T:
            done, result = await control.call(self.settings.data_dir, op, **args)
            if done:
                return result  # type: ignore[no-any-return]
            async with local_services(self.settings, self.clock) as services:
                return await fn(services)

        return asyncio.run(run())


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_path", metavar="FILE", envvar="MAILHOP_CONFIG",
              help="Configuration file (default ./mailhop.toml; embedded defaults if absent).")
@click.version_option(__version__, prog_name="mailhop")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """mailhop: an outbound mail transport with Exchange-style send connectors."""
    ctx.obj = Context(config_path)


@cli.command()
@click.option("--name", help="This transport server's name ([server] name).")
@click.option("--fqdn", help="EHLO name and Received: stamp ([server] fqdn).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Data directory ([server] data_dir).")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.option("--check", is_flag=True, help="Check the configuration, every listener and the files; do not start.")
@pass_ctx
def serve(ctx: Context, name: str | None, fqdn: str | None, data_dir: str | None, log_level: str,
          check: bool) -> None:
    """Run the transport server until SIGTERM (which drains it)."""
    server = {k: v for k, v in (("name", name), ("fqdn", fqdn), ("data_dir", data_dir)) if v}
    if server:
        ctx.overrides["server"] = server
    settings = ctx.settings
    from mailhop import preflight

    report = preflight.check(settings, listeners=True)
    if check:
        for line in report.warnings:
            click.echo(f"warning: {line}")
        for line in report.errors:
            click.echo(f"error: {line}")
        click.echo(f"mailhop serve --check: {len(report.errors)} error(s), {len(report.warnings)} warning(s)")
        raise SystemExit(1 if report.errors else 0)
    if report.errors:  # before any listener is up (and before the workers fork)
        raise ConfigError(report.errors[0])
    workers = settings.server.workers
    tag = f" {settings.server.name}/%(process)d" if workers > 1 else ""
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s{tag} %(name)s: %(message)s")
    from mailhop.service import Service
    from mailhop.workers import FATAL, share

    def run_worker(index: int) -> int:
        try:
            import uvloop  # optional: the "fast" extra
        except ImportError:
            runner = asyncio.run
        else:
            runner = uvloop.run
        try:
            runner(Service(share(settings, index, workers), worker=index).run())
        except MailhopError as exc:
            if workers == 1:
                raise
            click.echo(f"mailhop: worker {index}: {exc}", err=True)
            return FATAL  # the supervisor stops the others: starting again would fail the same way
        return 0

    if workers == 1:
        run_worker(0)
    else:
        from mailhop.workers import supervise

        raise SystemExit(supervise(workers, run_worker))


def _register() -> None:
    from mailhop.cli import (
        admin,
        connector,
        dkim,
        domain,
        headers,
        queue,
        route,
        sendmail,
        server,
        tls,
        track,
        user,
    )

    cli.add_command(connector.connector)
    cli.add_command(route.route)
    cli.add_command(queue.queue)
    cli.add_command(track.track)
    cli.add_command(user.user)
    cli.add_command(server.server)
    cli.add_command(server.db)
    cli.add_command(admin.admin)
    cli.add_command(headers.headers)
    cli.add_command(dkim.dkim)
    cli.add_command(domain.domain)
    cli.add_command(tls.tls)
    cli.add_command(sendmail.sendmail)


_register()


def main() -> None:
    os.umask(0o077)  # whatever mailhop creates (store, logs, spool, keys) is its user's alone
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("mailhop: aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        click.echo(f"mailhop: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except MailhopError as exc:
        click.echo(f"mailhop: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"mailhop: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), err=True)
        sys.exit(1)
    except Exception as exc:  # one line for the administrator; the traceback on request
        if os.environ.get("MAILHOP_DEBUG"):
            raise
        click.echo(f"mailhop: internal error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(2)
