"""The rules behind every surface: the CLI, the REST API, the console and the control socket only translate.

``Services`` bundles one service per resource (connectors, queues, servers, tokens, routing,
dkim, readiness, tls, tls_reports) over one store, and, given the receive path (a
``Submission`` and the DKIM keyring), the two ways in without SMTP: ``http`` (``POST
/api/messages``) and ``pickup`` (``mailhop sendmail``).  The server builds it once; the CLI builds its own only when
no server runs on its data directory (otherwise it calls the server's through the
control socket, so only the server composes NDRs and writes the tracking log).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mailhop.clock import Clock
from mailhop.config import Settings
from mailhop.delivery.dns import Resolver
from mailhop.delivery.security import TransportSecurity, transport_security
from mailhop.delivery.tls_results import TlsCounter
from mailhop.dkim.keyring import Keyring
from mailhop.queue.ndr import NdrComposer
from mailhop.queue.submission import Submission
from mailhop.receive.local import HTTP, PICKUP, LocalSubmission
from mailhop.sealing import Sealer
from mailhop.services.connectors import ConnectorService
from mailhop.services.dkim import DkimService
from mailhop.services.queues import QueueService
from mailhop.services.readiness import ReadinessService
from mailhop.services.routing import RoutingService
from mailhop.services.servers import ServerService
from mailhop.services.tls import TlsService
from mailhop.services.tls_reports import TlsReportService
from mailhop.services.tokens import TokenService
from mailhop.store.base import Store
from mailhop.tracking.events import Tracker


@dataclass(frozen=True)
class Services:
    connectors: ConnectorService
    queues: QueueService
    servers: ServerService
    tokens: TokenService
    routing: RoutingService
    dkim: DkimService
    readiness: ReadinessService
    tls: TlsService
    tls_reports: TlsReportService
    http: LocalSubmission | None = None
    pickup: LocalSubmission | None = None

    @classmethod
    def build(cls, settings: Settings, store: Store, clock: Clock, tracker: Tracker, ndr: NdrComposer,
              sealer: Sealer, resolver: Resolver, wake: Callable[[], None] = lambda: None,
              security: TransportSecurity | None = None, tls_counter: TlsCounter | None = None,
              submission: Submission | None = None, keyring: Keyring | None = None) -> Services:
        """``wake``: the running server's claimer, for changes that make mail due now; ``security``:
        the running server's TLS policies (its MTA-STS policies in memory); ``tls_counter``: its
        TLS-RPT session counts."""
        security = security or transport_security(settings, store.mta_sts, resolver, clock)
        return cls(
            connectors=ConnectorService(store.connectors, settings, sealer),
            queues=QueueService(store, clock, tracker, ndr, wake),
            servers=ServerService(store, settings.cluster.lease_timeout, clock),
            tokens=TokenService(store.tokens),
            routing=RoutingService(store.connectors, settings.server.name),
            dkim=DkimService(store.dkim, settings, sealer, resolver, clock),
            readiness=ReadinessService(store, settings, resolver),
            tls=TlsService(store.connectors, settings, security, clock),
            tls_reports=TlsReportService(store, settings, resolver, ndr, clock, tls_counter, wake),
            http=LocalSubmission.over(submission, HTTP, clock, keyring) if submission else None,
            pickup=LocalSubmission.over(submission, PICKUP, clock, keyring) if submission else None,
        )
