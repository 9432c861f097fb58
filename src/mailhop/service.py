"""The composition root: builds every part from the settings, starts and stops them.

Start order: store, tracking log, scheduler (recovers leases left by an earlier
run), then the receive connectors' listeners.  Stop order (SIGTERM, SIGINT) is
the reverse: stop accepting and close idle SMTP sessions, let sessions in DATA
and deliveries in flight finish within ``shutdown_timeout``, release every lease
still held so the next run (or another server) takes the mail, close the store.
Nothing accepted is lost at any point: the store holds it from the 250 on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from mailhop.admin.api import AdminContext
from mailhop.admin.auth import Sessions
from mailhop.admin.server import AdminServer
from mailhop.clock import SYSTEM_CLOCK
from mailhop.config import ReceiveConnectorSettings, Settings, split_hostport
from mailhop.delivery.dns import DnsResolver
from mailhop.delivery.tls import TlsPolicy
from mailhop.errors import ConfigError, MailhopError
from mailhop.model.ids import IdGenerator
from mailhop.queue.retry import RetryPolicy
from mailhop.queue.runtime import Runtime
from mailhop.queue.scheduler import Scheduler
from mailhop.queue.submission import Submission
from mailhop.receive.handler import ReceiveHandler
from mailhop.receive.users import UserStore
from mailhop.routing.router import Router
from mailhop.smtp.server import ServerOptions, Session, SMTPServer
from mailhop.store import Store, open_store
from mailhop.tracking.log import TrackingLog, tracking_dir
from mailhop.tracking.protocol import ProtocolLog

log = logging.getLogger("mailhop")


def server_tls_context(rc: ReceiveConnectorSettings) -> ssl.SSLContext | None:
    if rc.tls_certificate is None or rc.tls_key is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(rc.tls_certificate), str(rc.tls_key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"receive connector '{rc.name}': tls_certificate/tls_key cannot be loaded: {exc}") from None
    return ctx


def receive_trace(plog: ProtocolLog, connector: str) -> Callable[[Session, str, str], None]:
    def write(session: Session, event: str, data: str) -> None:
        plog.write(connector, session.session_id, 0, f"{session.local_ip}:{session.local_port}",
                   f"{session.peer_ip}:{session.peer_port}", event, data)
    return write


@dataclass
class Service:
    settings: Settings
    store: Store | None = None
    runtime: Runtime | None = None
    scheduler: Scheduler | None = None
    listeners: list[tuple[str, SMTPServer]] = field(default_factory=list)
    logs: list[ProtocolLog] = field(default_factory=list)
    admin: AdminServer | None = None
    worker: int = 0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _stopped: bool = False

    async def start(self) -> None:
        s = self.settings
        self.store = await open_store(s)
        tracking = TrackingLog(tracking_dir(s.data_dir), s.tracking, s.server.fqdn, s.server.name)
        owner = f"{s.server.name}/{self.worker}/{uuid.uuid4().hex[:12]}"
        rt = Runtime(s, self.store, tracking, owner, Router([], s.server.name), RetryPolicy(s.queue),
                     IdGenerator(SYSTEM_CLOCK, self.worker))
        self.runtime = rt
        submission = Submission(rt)
        resolver = DnsResolver(s.dns.nameservers, s.dns.timeout, s.dns.lifetime)
        send_log = ProtocolLog(s.data_dir, True, s.protocol_log)
        self.logs = [send_log]
        self.scheduler = Scheduler(rt, submission, resolver, tls_plan=TlsPolicy(s).plan, protocol_log=send_log)
        submission.scheduler = self.scheduler
        await self.scheduler.start()
        try:
            receive_log = ProtocolLog(s.data_dir, False, s.protocol_log)
            self.logs.append(receive_log)
            users = UserStore(s.server.users_path)
            for rc in s.receive_connectors:
                handler = ReceiveHandler(rc, submission, users)
                tls_context = server_tls_context(rc)
                server = SMTPServer(handler, ServerOptions(
                    hostname=rc.fqdn or s.server.fqdn,
                    max_message_size=rc.max_message_size,
                    max_recipients=rc.max_recipients_per_message,
                    idle_timeout=rc.connection_timeout,
                    max_connections=rc.max_inbound_connections,
                    tls_context=tls_context,
                    require_tls=rc.require_tls,
                    auth_enabled=rc.auth and tls_context is not None,
                ), protocol_log=receive_trace(receive_log, rc.name) if rc.protocol_logging_level == "Verbose" else None,
                   accepting=lambda: not (self.scheduler and self.scheduler.draining))
                host, port = split_hostport(rc.bind)
                await server.start(host, port, reuse_port=s.server.workers > 1)
                self.listeners.append((rc.name, server))
                log.info("%s: receive connector '%s' listening on %s", s.server.name, rc.name, rc.bind)
            if s.admin.enabled and self.worker == 0:  # console sessions live in one process
                self.admin = AdminServer(AdminContext(s, rt, Sessions(s.admin.session_lifetime)))
                await self.admin.start()
                log.info("%s: admin API and console on http://%s/", s.server.name, s.admin.bind)
        except (OSError, MailhopError):
            await self.stop()
            raise

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        grace = self.settings.server.shutdown_timeout
        if self.admin is not None:
            await self.admin.stop()
        await asyncio.gather(*(server.stop(grace) for _, server in self.listeners))
        if self.scheduler is not None:
            await self.scheduler.stop(grace)
        if self.runtime is not None:
            self.runtime.tracking.flush()
        for plog in self.logs:
            plog.flush()
        if self.store is not None:
            await self.store.close()

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Run until SIGTERM or SIGINT, then drain and stop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, self.request_stop)
        await self.start()
        log.info("%s (%s) started", self.settings.server.name, self.settings.server.fqdn)
        await self._stop.wait()
        log.info("%s stopping: draining sessions and deliveries", self.settings.server.name)
        await self.stop()
        log.info("%s stopped", self.settings.server.name)
