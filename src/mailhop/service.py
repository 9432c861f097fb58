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
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from mailhop.admin.api import AdminContext
from mailhop.admin.auth import Sessions
from mailhop.admin.server import AdminServer
from mailhop.clock import SYSTEM_CLOCK, Clock
from mailhop.config import Settings
from mailhop.delivery.dns import DnsResolver
from mailhop.delivery.security import transport_security
from mailhop.delivery.tls_results import TlsCounter
from mailhop.dkim.keyring import Keyring
from mailhop.errors import MailhopError
from mailhop.listeners import admin_tls_context, bind, server_tls_context
from mailhop.model.ids import IdGenerator
from mailhop.private import private_dir
from mailhop.private import problems as private_problems
from mailhop.queue.context import Live, QueueContext, Snapshot
from mailhop.queue.ndr import NdrComposer
from mailhop.queue.retry import RetryPolicy
from mailhop.queue.scheduler import Scheduler
from mailhop.queue.submission import Submission
from mailhop.receive.handler import ReceiveHandler
from mailhop.receive.users import UserStore
from mailhop.routing.router import Router
from mailhop.sealing import Sealer, reseal
from mailhop.services import Services
from mailhop.services.control import ControlServer, socket_path
from mailhop.smtp.server import ServerOptions, Session, SMTPServer
from mailhop.store import Store, open_store
from mailhop.tracking.events import Tracker
from mailhop.tracking.log import TrackingLog, tracking_dir
from mailhop.tracking.protocol import ProtocolLog

log = logging.getLogger("mailhop")


def receive_trace(plog: ProtocolLog, connector: str) -> Callable[[Session, str, str], None]:
    def write(session: Session, event: str, data: str) -> None:
        plog.write(connector, session.session_id, 0, f"{session.local_ip}:{session.local_port}",
                   f"{session.peer_ip}:{session.peer_port}", event, data)
    return write


@dataclass
class Service:
    settings: Settings
    worker: int = 0
    clock: Clock = SYSTEM_CLOCK
    store: Store | None = None
    tracking: TrackingLog | None = None
    scheduler: Scheduler | None = None
    services: Services | None = None
    listeners: list[tuple[str, SMTPServer]] = field(default_factory=list)
    logs: list[ProtocolLog] = field(default_factory=list)
    admin: AdminServer | None = None
    control: ControlServer | None = None
    keyring: Keyring | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _stopped: bool = False

    async def start(self) -> None:
        s = self.settings
        clock = self.clock
        private_dir(s.data_dir)
        if self.worker == 0:
            for problem in private_problems(s.data_dir):
                log.warning("permissions: %s", problem)
        self.store = store = await open_store(s, clock)
        owner = f"{s.server.name}/{self.worker}/{uuid.uuid4().hex[:12]}"
        self.tracking = TrackingLog(tracking_dir(s.data_dir), s.tracking, s.server.fqdn, s.server.name, clock)
        tracker = Tracker(clock, owner, [self.tracking])
        ctx = QueueContext(s, store, tracker, clock, IdGenerator(clock, self.worker), RetryPolicy(s.queue), owner)
        live = Live(Snapshot(Router([], s.server.name)))
        sealer = Sealer(s.server.secret_key_path)
        await reseal(store.connectors, sealer)
        self.keyring = keyring = Keyring(store.dkim, sealer)
        await keyring.refresh()
        ndr = NdrComposer(ctx, live, keyring)
        resolver = DnsResolver.from_settings(s.dns)
        send_log = ProtocolLog(s.data_dir, True, s.protocol_log, clock)
        self.logs = [send_log]
        # Sessions are counted for TLS reports only when they are sent (nothing piles up otherwise).
        self.tls_counter = TlsCounter(clock) if s.tls_reporting.enabled else None
        security = transport_security(s, store.mta_sts, resolver, clock, self.tls_counter)
        self.scheduler = scheduler = Scheduler(ctx, live, ndr, resolver, tls_plan=security.plan,
                                               protocol_log=send_log, tls_outcome=security.outcome)
        submission = Submission(ctx, live, ndr, scheduler)
        self.services = Services.build(s, store, clock, tracker, ndr, sealer, resolver, wake=scheduler.wake,
                                       security=security, tls_counter=self.tls_counter, submission=submission,
                                       keyring=keyring)
        try:
            # Every listener is bound before anything is served: one that cannot listen stops the
            # start with a line that names it, before any SMTP connection is taken.
            receive_log = ProtocolLog(s.data_dir, False, s.protocol_log, clock)
            self.logs.append(receive_log)
            users = UserStore(s.server.users_path)
            for rc in s.receive_connectors:
                tls_context = server_tls_context(rc)
                server = SMTPServer(ReceiveHandler(rc, submission, users, clock, keyring), ServerOptions(
                    hostname=rc.fqdn or s.server.fqdn,
                    max_message_size=rc.max_message_size,
                    max_recipients=rc.max_recipients_per_message,
                    idle_timeout=rc.connection_inactivity_timeout,
                    session_timeout=rc.connection_timeout,
                    max_connections=rc.max_inbound_connections,
                    max_connections_per_source=rc.max_inbound_connection_per_source,
                    tls_context=tls_context,
                    require_tls=rc.require_tls,
                    auth_enabled=rc.auth and tls_context is not None,
                    binary_mime=rc.binary_mime_enabled,
                    clock=clock,
                ), protocol_log=receive_trace(receive_log, rc.name) if rc.protocol_logging_level == "Verbose" else None,
                   accepting=lambda: not scheduler.draining)
                await server.listen(bind(f"receive connector '{rc.name}'", rc.bind, reuse_port=s.server.workers > 1))
                self.listeners.append((rc.name, server))
            if self.worker == 0:  # console sessions and the control socket live in one process
                self.control = ControlServer(socket_path(s.data_dir), self.services)
                await self.control.start()
                if s.admin.enabled:
                    admin_tls_context(s.admin)  # refuses a certificate that cannot be used, now
                    self.admin = AdminServer(
                        AdminContext(s, self.services, store, Sessions(s.admin.session_lifetime, clock), clock),
                        bind("the admin API", s.admin.bind))
            await scheduler.start()
            self._tasks.append(asyncio.create_task(
                keyring.follow(clock, s.server.config_poll_interval), name="dkim-keys"))
            if self.worker == 0:  # one look at DNS per server is enough
                self._tasks.append(asyncio.create_task(
                    self.services.dkim.follow_dns(s.dkim.check_interval), name="dkim-dns"))
            if s.tls_reporting.enabled:  # every worker adds its counts; one sends the reports
                self._tasks.append(asyncio.create_task(
                    self.services.tls_reports.follow(send=self.worker == 0), name="tls-reports"))
            for name, server in self.listeners:
                await server.serve()
                log.info("%s: receive connector '%s' listening on %s", s.server.name, name,
                         next(rc.bind for rc in s.receive_connectors if rc.name == name))
            if self.admin is not None:
                await self.admin.start()
                scheme = "https" if s.admin.tls_certificate else "http"
                log.info("%s: admin API and console on %s://%s/", s.server.name, scheme, s.admin.bind)
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
        if self.control is not None:
            await self.control.stop()
        await asyncio.gather(*(server.stop(grace) for _, server in self.listeners))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.scheduler is not None:
            await self.scheduler.stop(grace)
        if self.services is not None:
            try:
                await self.services.tls_reports.flush()  # the counts of the last minutes
            except MailhopError as exc:
                log.warning("TLS report counts not saved: %s", exc)
        if self.tracking is not None:
            self.tracking.flush()
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
