"""Running the admin API inside ``mailhop serve``: uvicorn on the service's event loop.

uvicorn's own signal handling is switched off: SIGTERM belongs to the service, which
stops the API with everything else.  A bind failure is a ConfigError at start.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn

from mailhop.admin.api import AdminContext, create_app
from mailhop.config import split_hostport
from mailhop.errors import ConfigError


class _Uvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class AdminServer:
    def __init__(self, ctx: AdminContext) -> None:
        host, port = split_hostport(ctx.settings.admin.bind)
        config = uvicorn.Config(create_app(ctx), host=host, port=port, log_level="warning", lifespan="off",
                                access_log=False, server_header=False)
        self.server = _Uvicorn(config)
        self.task: asyncio.Task[None] | None = None
        self.bind = ctx.settings.admin.bind

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self.task.done():
                raise ConfigError(f"the admin API cannot listen on {self.bind}")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self.task is None:
            return
        self.server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 10)
