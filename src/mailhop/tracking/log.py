"""The message tracking log: one JSON object per line, Exchange's event IDs and fields.

Files are ``<data_dir>/logs/MessageTracking/MSGTRKyyyymmdd-N.log`` (UTC date), a new
one when the date changes or the file passes ``max_file_size``; files older than
``max_age`` or beyond ``max_directory_size`` are deleted, oldest first.

Events written in one turn of the event loop leave in one write; a failure to
write is logged and never stops mail flow (the log is a record, not the queue).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from mailhop.clock import SYSTEM_CLOCK, Clock
from mailhop.config import TrackingSettings
from mailhop.tracking.events import TrackingEvent
from mailhop.tracking.files import RotatingLog

PREFIX = "MSGTRK"


def tracking_dir(data_dir: Path) -> Path:
    return data_dir / "logs" / "MessageTracking"


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TrackingLog:
    def __init__(self, directory: Path, settings: TrackingSettings, server_hostname: str, server_name: str,
                 clock: Clock) -> None:
        self.directory = directory
        self.settings = settings
        self.server_hostname = server_hostname
        self.server_name = server_name
        self._file = RotatingLog(directory, PREFIX, settings.max_file_size, settings.max_age,
                                 settings.max_directory_size, clock)

    def __call__(self, event: TrackingEvent) -> None:
        """Write one event (a ``Tracker`` sink): one JSON line, Exchange's field names."""
        if not self.settings.enabled:
            return
        record: dict[str, Any] = {
            "Timestamp": iso(event.timestamp),
            "EventId": event.event_id,
            "Source": event.source,
            "SourceContext": event.source_context,
            "ServerHostname": self.server_hostname,
            "ServerName": self.server_name,
        }
        info = event.info
        if info is not None:
            record.update({
                "ClientIp": info.client_ip,
                "ClientHostname": info.client_hostname,
                "InternalMessageId": info.id,
                "MessageId": info.message_id,
                "Sender": info.sender,
                "ReturnPath": info.sender or "<>",
                "TotalBytes": info.size,
                "AuthUser": info.auth_user,
            })
            if self.settings.subject_logging and info.subject is not None:
                record["MessageSubject"] = info.subject
        record["ConnectorId"] = event.connector_id
        record["ServerIp"] = event.server_ip
        record["Recipients"] = list(event.recipients)
        record["RecipientCount"] = len(event.recipients)
        if event.recipient_status is not None:
            record["RecipientStatus"] = list(event.recipient_status)
        record.update(event.extra)
        self._file.write(json.dumps({k: v for k, v in record.items() if v is not None}, ensure_ascii=False))

    def flush(self) -> None:
        self._file.flush()


def log_files(directory: Path) -> list[Path]:
    return RotatingLog(directory, PREFIX, None, 0, None, SYSTEM_CLOCK).files()
