"""Integration fixtures: a whole mailhop service in-process on loopback, real SQLite, real sinks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from mailhop.config import from_mapping
from mailhop.model.connector import new_connector
from mailhop.service import Service
from tests.support.net import free_port
from tests.support.sink import Sink


class Transport:
    """A running Service plus helpers to configure it the way an administrator would."""

    def __init__(self, service: Service) -> None:
        self.service = service

    @property
    def port(self) -> int:
        server = self.service.listeners[0][1]
        return int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    @property
    def store(self) -> Any:
        return self.service.store

    async def connector(self, **values: Any) -> None:
        c = new_connector(values, self.service.settings.server.name)
        await self.service.store.connectors.create(c)  # type: ignore[union-attr]
        await self.service.scheduler.watch.poll()  # type: ignore[union-attr]

    def tracking(self) -> list[dict[str, Any]]:
        import json

        folder = self.service.settings.data_dir / "logs" / "MessageTracking"
        self.service.tracking.flush()  # type: ignore[union-attr]
        return [json.loads(line) for p in sorted(folder.glob("MSGTRK*.log")) for line in p.read_text().splitlines()]


@pytest.fixture
async def transport_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[Service] = []

    async def start(**sections: dict[str, Any]) -> Transport:
        config: dict[str, Any] = {
            "server": {"name": "EXCH01", "fqdn": "exch01.contoso.test", "data_dir": str(tmp_path / f"data{len(started)}"),
                       "config_poll_interval": "0.2s", "shutdown_timeout": "5s"},
            "receive_connectors": [{"name": "Client Relay EXCH01", "bind": f"127.0.0.1:{free_port()}",
                                    "remote_ip_ranges": ["127.0.0.0/8"]}],
            "queue": {"glitch_retry_interval": "0.3s", "transient_retry_interval": "0.3s",
                      "message_retry_interval": "0.3s", "retry_jitter": 0},
            # The test DNS servers answer with loopback addresses.
            "delivery": {"connect_timeout": "5s", "command_timeout": "20s", "connection_cache_time": "0.5s",
                         "allow_private_mx": True},
            "admin": {"bind": f"127.0.0.1:{free_port()}"},
        }
        for key, value in sections.items():
            if isinstance(value, dict):
                config.setdefault(key, {}).update(value)
            else:
                config[key] = value
        settings = from_mapping(config)
        service = Service(settings)
        await service.start()
        started.append(service)
        return Transport(service)

    yield start
    for service in started:
        await service.stop()


@pytest.fixture
def sink() -> Any:
    s = Sink().start()
    yield s
    s.stop()


@pytest.fixture
def sink_factory() -> Any:
    sinks: list[Sink] = []

    def make(**knobs: Any) -> Sink:
        s = Sink(**knobs).start()
        sinks.append(s)
        return s

    yield make
    for s in sinks:
        s.stop()
