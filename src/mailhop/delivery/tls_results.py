"""TLS reporting counters (RFC 8460): each outbound session's outcome under the policy that applied.

Delivery calls ``success`` or ``failure`` once per session attempt to an MX host, with the
``PolicyKey`` the TLS policy was decided under: the policy domain, the policy type (``tlsa``
with its records, ``sts`` with its text and mx patterns, ``no-policy-found``).  Counts are
kept in memory per UTC day and handed to the store by ``drain`` (the TLS report service
flushes them every ``[tls_reporting] flush_interval``), where every server of a cluster adds
its own to the same rows.

``result_type`` maps a failure's reply to RFC 8460 section 4.3's result types.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mailhop.clock import Clock

RESULT_TYPES = (
    "starttls-not-supported", "certificate-host-mismatch", "certificate-expired", "certificate-not-trusted",
    "validation-failure", "tlsa-invalid", "dnssec-invalid", "dane-required", "sts-policy-fetch-error",
    "sts-policy-invalid", "sts-webpki-invalid",
)


@dataclass(frozen=True, slots=True)
class PolicyKey:
    domain: str
    policy_type: str                    # tlsa | sts | no-policy-found
    policy_string: tuple[str, ...] = ()
    mx_host: tuple[str, ...] = ()       # sts: the policy's mx patterns

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"policy-type": self.policy_type, "policy-domain": self.domain}
        if self.policy_string:
            out["policy-string"] = list(self.policy_string)
        if self.mx_host:
            out["mx-host"] = list(self.mx_host)
        return out


@dataclass(frozen=True, slots=True)
class Failure:
    result_type: str
    receiving_mx: str | None
    receiving_ip: str | None


@dataclass(slots=True)
class CountRow:
    """One (day, policy) row as the store keeps it: successes and failures by detail."""

    day: str
    key: PolicyKey
    success: int = 0
    failures: Counter[Failure] = field(default_factory=Counter)
    reasons: dict[Failure, str] = field(default_factory=dict)

    @property
    def policy_json(self) -> str:
        return json.dumps(self.key.to_json(), sort_keys=True)

    def failures_json(self) -> list[dict[str, object]]:
        out = []
        for f, n in sorted(self.failures.items(), key=lambda item: (item[0].result_type, str(item[0].receiving_mx))):
            detail: dict[str, object] = {"result-type": f.result_type, "failed-session-count": n}
            if f.receiving_mx:
                detail["receiving-mx-hostname"] = f.receiving_mx
            if f.receiving_ip:
                detail["receiving-ip"] = f.receiving_ip
            if self.reasons.get(f):
                detail["additional-information"] = self.reasons[f][:500]
            out.append(detail)
        return out


def utc_day(now: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(now))


def result_type(text: str) -> str:
    """The RFC 8460 result type of a TLS failure's reply text (mailhop's own wording)."""
    low = text.lower()
    if "did not offer starttls" in low or "refused starttls" in low:
        return "starttls-not-supported"
    if "tlsa lookup" in low:
        return "dnssec-invalid"
    if "smtpdanemode mandatory" in low:
        return "dane-required"
    if "dane" in low:
        return "validation-failure"
    if "expired" in low:
        return "certificate-expired"
    if "do not match" in low or "hostname mismatch" in low or "not valid for" in low:
        return "certificate-host-mismatch"
    if "certificate verify failed" in low or "self-signed" in low or "unable to get local issuer" in low:
        return "certificate-not-trusted"
    return "validation-failure"


class TlsCounter:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._rows: dict[tuple[str, PolicyKey], CountRow] = {}

    def _row(self, key: PolicyKey) -> CountRow:
        day = utc_day(self.clock.now())
        row = self._rows.get((day, key))
        if row is None:
            row = self._rows[(day, key)] = CountRow(day, key)
        return row

    def success(self, key: PolicyKey) -> None:
        self._row(key).success += 1

    def failure(self, key: PolicyKey, kind: str, mx: str | None, ip: str | None, reason: str = "") -> None:
        row = self._row(key)
        f = Failure(kind, mx, ip)
        row.failures[f] += 1
        row.reasons.setdefault(f, reason)

    def drain(self) -> list[CountRow]:
        rows = list(self._rows.values())
        self._rows.clear()
        return rows


@dataclass(slots=True)
class DayCounts:
    """What the store holds for one policy domain and day: (policy object, successes, failures)."""

    day: str
    domain: str
    policies: list[tuple[dict[str, Any], int, list[dict[str, Any]]]] = field(default_factory=list)

    @property
    def successful(self) -> int:
        return sum(s for _, s, _ in self.policies)

    @property
    def failed(self) -> int:
        return sum(int(f["failed-session-count"]) for _, _, fs in self.policies for f in fs)


@dataclass(slots=True)
class SentReport:
    day: str
    domain: str
    report_id: str
    server: str
    sent_at: float
    destinations: dict[str, str]  # rua -> what became of it ("queued as ...", "HTTP 200", an error)


def merge_failures(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Failure details of two counts of the same policy, added up by result type, MX and IP."""
    def key(d: dict[str, Any]) -> tuple[Any, ...]:
        return d["result-type"], d.get("receiving-mx-hostname"), d.get("receiving-ip")

    merged = {key(d): dict(d) for d in old}
    for d in new:
        if key(d) in merged:
            merged[key(d)]["failed-session-count"] += d["failed-session-count"]
        else:
            merged[key(d)] = dict(d)
    return [merged[k] for k in sorted(merged, key=lambda k: tuple(str(x) for x in k))]
