"""TLS reporting (RFC 8460): the day's counts as reports, sent once a day to each domain's ``rua``.

``flush`` adds the server's in-memory counts (``delivery.tls_results.TlsCounter``) to the
store, where a cluster's servers add to the same rows.  ``send`` takes every finished UTC day
(and with ``now=True`` today so far) of every domain with counts, looks up ``_smtp._tls.<domain>``
(``v=TLSRPTv1; rua=...``), takes the report in the store (one server of a cluster sends it:
the store's key on domain and day) and sends it to each ``rua``:

- ``mailto:``: a message through mailhop itself (``multipart/report; report-type="tlsrpt"``,
  the gzipped JSON as ``application/tlsrpt+gzip``, ``TLS-Report-Domain`` and
  ``TLS-Report-Submitter``, RFC 8460 section 5.3), DKIM-signed when a config covers the
  sender's domain, queued like an NDR;
- ``https:``: a POST of ``application/tlsrpt+gzip``, the certificate validated (the Web PKI),
  the host resolved through the delivery resolver.

What became of each destination is kept with the report (``days``); counts and reports older
than ``KEEP_DAYS`` are forgotten at each round.  A domain without a TLSRPT
record gets nothing, and is asked again at the next round.
"""

from __future__ import annotations

import asyncio
import calendar
import email.message
import email.policy
import email.utils
import gzip
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from mailhop.clock import Clock
from mailhop.config import Settings
from mailhop.delivery import https
from mailhop.delivery.dns import DnsError, Resolver
from mailhop.delivery.tls import build_context
from mailhop.delivery.tls_results import DayCounts, SentReport, TlsCounter, utc_day
from mailhop.errors import ConflictError, NotFoundError, ValidationError
from mailhop.model.message import REPORT
from mailhop.queue.ndr import NdrComposer
from mailhop.store.base import Store

log = logging.getLogger(__name__)

UPLOAD_TIMEOUT = 30.0
DAY = 86400
KEEP_DAYS = 31  # counts and sent reports older than this are forgotten


def parse_rua(records: list[str]) -> list[str]:
    """The ``rua`` URIs of the one ``v=TLSRPTv1`` record (RFC 8460 section 3), [] when none."""
    found = [r for r in records if re.match(r"v=TLSRPTv1\s*(;|$)", r.strip())]
    if len(found) != 1:
        return []
    m = re.search(r"(?:^|;)\s*rua=([^;]+)", found[0])
    if not m:
        return []
    return [u.strip() for u in m.group(1).split(",") if u.strip().lower().startswith(("mailto:", "https:"))]


def report_json(counts: DayCounts, organization: str, contact: str, report_id: str) -> dict[str, Any]:
    """RFC 8460 section 4's report object for one policy domain and UTC day."""
    return {
        "organization-name": organization,
        "date-range": {"start-datetime": f"{counts.day}T00:00:00Z", "end-datetime": f"{counts.day}T23:59:59Z"},
        "contact-info": contact,
        "report-id": report_id,
        "policies": [
            {"policy": policy,
             "summary": {"total-successful-session-count": success,
                         "total-failure-session-count": sum(int(f["failed-session-count"]) for f in failures)},
             **({"failure-details": failures} if failures else {})}
            for policy, success, failures in counts.policies
        ],
    }


def _day_start(day: str) -> int:
    return calendar.timegm(time.strptime(day, "%Y-%m-%d"))


class TlsReportService:
    def __init__(self, store: Store, settings: Settings, resolver: Resolver, ndr: NdrComposer, clock: Clock,
                 counter: TlsCounter | None = None, wake: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.settings = settings
        self.resolver = resolver
        self.ndr = ndr
        self.clock = clock
        self.counter = counter
        self.wake = wake
        r = settings.tls_reporting
        self.organization = r.organization_name or settings.server.fqdn
        self.contact = r.contact_info or settings.server.postmaster_address
        self.sender = r.sender or settings.server.postmaster_address
        self._context = build_context(settings.tls, True)

    async def flush(self) -> None:
        if self.counter is not None:
            await self.store.tls_reports.add(self.counter.drain())

    async def days(self) -> list[dict[str, Any]]:
        await self.flush()
        sent = {(s.day, s.domain): s for s in await self.store.tls_reports.sent()}
        out = []
        for c in await self.store.tls_reports.counts():
            s = sent.get((c.day, c.domain))
            out.append({"Date": c.day, "Domain": c.domain, "SuccessfulSessions": c.successful,
                        "FailedSessions": c.failed, "Policies": [p["policy-type"] for p, _, _ in c.policies],
                        "ReportId": s.report_id if s else None, "SentAt": s.sent_at if s else None,
                        "SentBy": s.server if s else None, "Destinations": s.destinations if s else {}})
        return out

    async def show(self, domain: str, day: str | None = None) -> dict[str, Any]:
        """The report of ``domain`` for ``day`` (default today, UTC) as it is (or would be) sent."""
        await self.flush()
        day = day or utc_day(self.clock.now())
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
            raise ValidationError(f"--date '{day}' is not a date (YYYY-MM-DD)")
        counts = await self.store.tls_reports.counts(day, domain)
        if not counts:
            raise NotFoundError(f"no TLS sessions to {domain} counted on {day}")
        sent = {(s.day, s.domain): s for s in await self.store.tls_reports.sent()}.get((day, counts[0].domain))
        return report_json(counts[0], self.organization, self.contact,
                           sent.report_id if sent else "(assigned when sent)")

    async def send(self, now: bool = False) -> list[dict[str, Any]]:
        """Send every due report (finished days; with ``now`` today's too); what was done."""
        await self.flush()
        today = utc_day(self.clock.now())
        await self.store.tls_reports.prune(utc_day(self.clock.now() - KEEP_DAYS * DAY))
        taken = {(s.day, s.domain) for s in await self.store.tls_reports.sent()}
        results = []
        for counts in await self.store.tls_reports.counts():
            if (counts.day, counts.domain) in taken or counts.day > today or (counts.day == today and not now):
                continue
            results.append(await self._send_one(counts))
        return results

    async def _send_one(self, counts: DayCounts) -> dict[str, Any]:
        out: dict[str, Any] = {"Date": counts.day, "Domain": counts.domain, "Destinations": {}}
        try:
            rua = parse_rua(await self.resolver.txt(f"_smtp._tls.{counts.domain}"))
        except DnsError as exc:
            if not exc.permanent:
                out["Error"] = f"TXT _smtp._tls.{counts.domain}: {exc}"
                return out
            rua = []
        if not rua:
            out["Error"] = f"{counts.domain} publishes no TLSRPT record (_smtp._tls.{counts.domain})"
            return out
        report_id = f"{counts.day}.{counts.domain}.{uuid.uuid4().hex[:12]}@{self.settings.server.fqdn}"
        report = SentReport(counts.day, counts.domain, report_id, self.settings.server.name, self.clock.now(), {})
        try:
            if not await self.store.tls_reports.claim(report):
                out["Error"] = "sent already by another server"
                return out
        except ConflictError:
            out["Error"] = "sent already by another server"
            return out
        body = gzip.compress(json.dumps(report_json(counts, self.organization, self.contact, report_id),
                                        indent=1).encode(), mtime=0)
        for uri in rua:
            try:
                if uri.lower().startswith("mailto:"):
                    report.destinations[uri] = await self._mail(uri[7:].split("?")[0], counts, report_id, body)
                else:
                    report.destinations[uri] = await self._post(uri, body)
            except Exception as exc:  # one destination's failure is recorded, the others still get it
                log.warning("TLS report for %s to %s failed: %s", counts.domain, uri, exc)
                report.destinations[uri] = f"failed: {exc}"
        await self.store.tls_reports.update_sent(report)
        out.update(ReportId=report_id, Destinations=report.destinations)
        return out

    def _filename(self, counts: DayCounts) -> str:
        start = _day_start(counts.day)
        return f"{self.settings.server.fqdn}!{counts.domain}!{start}!{start + DAY - 1}!{uuid.uuid4().hex[:6]}.json.gz"

    async def _mail(self, to: str, counts: DayCounts, report_id: str, body: bytes) -> str:
        submitter = self.settings.server.fqdn
        msg = email.message.EmailMessage()
        msg["From"] = self.sender
        msg["To"] = to
        msg["Date"] = email.utils.formatdate(self.clock.now(), usegmt=True)
        msg["Subject"] = f"Report Domain: {counts.domain} Submitter: {submitter} Report-ID: <{report_id}>"
        message_id = f"<{uuid.uuid4().hex}@{submitter}>"
        msg["Message-ID"] = message_id
        msg["TLS-Report-Domain"] = counts.domain
        msg["TLS-Report-Submitter"] = submitter
        msg.set_content(f"This is an aggregate TLS report from {submitter} for {counts.domain}, {counts.day} (UTC).\n")
        msg.add_attachment(body, maintype="application", subtype="tlsrpt+gzip", filename=self._filename(counts))
        msg.replace_header("Content-Type", msg.get("Content-Type", "").replace("multipart/mixed", "multipart/report"))
        msg.set_param("report-type", "tlsrpt")
        data = msg.as_bytes(policy=email.policy.SMTP)
        new = self.ndr.new_message(data, to, message_id, msg["Subject"], REPORT)
        await self.store.messages.submit([new])
        self.wake()
        return f"queued as {new.info.id}"

    async def _post(self, uri: str, body: bytes) -> str:
        url = urlsplit(uri)
        if url.scheme.lower() != "https" or not url.hostname:
            raise ValidationError(f"'{uri}' is not an https: URL")
        ips = await self.resolver.addresses(url.hostname)
        async with asyncio.timeout(UPLOAD_TIMEOUT):
            status, _ = await https.request(
                url.hostname, ips[0], url.port or 443, self._context, "POST", url.path or "/",
                [("Content-Type", "application/tlsrpt+gzip")], body)
        if not 200 <= status < 300:
            raise https.HttpsError(f"{uri} answered HTTP {status}", "protocol")
        return f"HTTP {status}"

    async def follow(self, send: bool) -> None:
        """Flush every ``flush_interval``; when ``send``, look for due reports every ``send_interval``."""
        r = self.settings.tls_reporting
        last_send = 0.0
        while True:
            await self.clock.sleep(r.flush_interval)
            try:
                await self.flush()
                if send and self.clock.now() - last_send >= r.send_interval:
                    last_send = self.clock.now()
                    await self.send()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("TLS reporting failed; tried again in %.0f s", r.flush_interval)
