"""Searching the message tracking log, like Get-MessageTrackingLog.

Filters combine with AND: sender, recipient (any of the event's recipients),
Message-ID (with or without angle brackets), internal message id, event id,
subject substring, and a time window.  Times are ISO 8601 (``2026-11-28``,
``2026-11-28T09:30``; UTC unless a zone is given) or a duration meaning "that
long ago" (``2h``).  Lines that are not valid JSON are skipped, never fatal.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailhop.errors import ValidationError
from mailhop.tracking.log import log_files
from mailhop.units import parse_duration


def parse_time(text: str, now: float) -> float:
    """An instant: ISO 8601, or a duration before ``now``."""
    value = text.strip()
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            return now - parse_duration(value)
        except ValueError:
            raise ValidationError(
                f"'{text}' is not a time: use ISO 8601 (2026-11-28T09:30) or a duration ago (2h)"
            ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


@dataclass(frozen=True, slots=True)
class Query:
    sender: str | None = None
    recipient: str | None = None
    message_id: str | None = None
    internal_message_id: int | None = None
    event: str | None = None
    subject: str | None = None
    start: float | None = None
    end: float | None = None
    limit: int = 1000

    def matches(self, e: dict[str, Any]) -> bool:
        if self.event and str(e.get("EventId", "")).upper() != self.event.upper():
            return False
        if self.sender is not None and str(e.get("Sender", "")).lower() != self.sender.lower():
            return False
        if self.recipient and self.recipient.lower() not in (str(r).lower() for r in e.get("Recipients", [])):
            return False
        if self.message_id and str(e.get("MessageId", "")).strip("<>") != self.message_id.strip().strip("<>"):
            return False
        if self.internal_message_id is not None and e.get("InternalMessageId") != self.internal_message_id:
            return False
        if self.subject and self.subject.lower() not in str(e.get("MessageSubject", "")).lower():
            return False
        if self.start is not None or self.end is not None:
            try:
                ts = dt.datetime.fromisoformat(str(e.get("Timestamp", "")).replace("Z", "+00:00")).timestamp()
            except ValueError:
                return False
            if self.start is not None and ts < self.start:
                return False
            if self.end is not None and ts > self.end:
                return False
        return True


def events(directory: Path) -> Iterator[dict[str, Any]]:
    for path in log_files(directory):
        try:
            with path.open(encoding="utf-8") as fh:
                for line in fh:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(record, dict):
                        yield record
        except OSError:
            continue


def search(directory: Path, query: Query) -> list[dict[str, Any]]:
    out = []
    for record in events(directory):
        if query.matches(record):
            out.append(record)
            if len(out) >= query.limit:
                break
    return out
