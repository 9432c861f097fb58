"""Running the admin API inside ``mailhop serve``: uvicorn on the service's event loop.

uvicorn's own signal handling is switched off: SIGTERM belongs to the service, which
stops the API with everything else.  A bind failure is a ConfigError at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn

from mailhop.admin.api import AdminContext, create_app
from mailhop.errors import ConfigError


class _Uvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class AdminServer:
    """uvicorn on a socket bound already (``listeners.bind``), over HTTPS when ``[admin]`` has a
    certificate (``listeners.admin_tls_context`` checked it loads)."""

    def __init__(self, ctx: AdminContext, sock: socket.socket) -> None:
        admin = ctx.settings.admin
        tls = {"ssl_certfile": str(admin.tls_certificate), "ssl_keyfile": str(admin.tls_key)} \
            if admin.tls_certificate is not None else {}
        config = uvicorn.Config(create_app(ctx), log_level="warning", lifespan="off", access_log=False,
                                server_header=False, **tls)  # type: ignore[arg-type]
        self.server = _Uvicorn(config)
        self.sock = sock
        self.task: asyncio.Task[None] | None = None
        self.bind = admin.bind

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        while not self.server.started:
            if self.task.done():
                raise ConfigError(f"the admin API cannot serve on {self.bind}")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self.task is None:
            self.sock.close()
            return
        self.server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 10)
