"""One row of a readiness report, and how rows add up to the report's Result."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

PASS, WARN, FAIL = "Pass", "Warn", "Fail"


@dataclass(frozen=True, slots=True)
class Row:
    check: str     # SPF, DKIM, DMARC, ReverseDNS, MTA-STS, TLS-RPT
    result: str    # Pass, Warn, Fail
    evidence: str
    fix: str = ""  # empty when Pass
    address: str | None = None  # ReverseDNS rows only

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Check": self.check, "Result": self.result, "Evidence": self.evidence,
                               "Fix": "" if self.result == PASS else self.fix}
        if self.address is not None:
            out["Address"] = self.address
        return out


@dataclass(frozen=True, slots=True)
class Signing:
    """How mail from a domain is DKIM-signed: ``domain`` is the d= (None when unsigned; then
    ``issue`` says why and ``fix`` what to do)."""
    domain: str | None
    issue: str = ""
    fix: str = ""


def overall(rows: Iterable[Row]) -> str:
    results = {r.result for r in rows}
    return FAIL if FAIL in results else WARN if WARN in results else PASS


def could_not_check(check: str, error: object, address: str | None = None) -> Row:
    return Row(check, WARN, f"could not check: {error}", "check again once DNS answers", address)
