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
import time
from pathlib import Path
from typing import Any

from mailhop.config import TrackingSettings
from mailhop.model.message import MessageInfo
from mailhop.tracking.files import RotatingLog

PREFIX = "MSGTRK"


def tracking_dir(data_dir: Path) -> Path:
    return data_dir / "logs" / "MessageTracking"


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TrackingLog:
    def __init__(self, directory: Path, settings: TrackingSettings, server_hostname: str, server_name: str) -> None:
        self.directory = directory
        self.settings = settings
        self.server_hostname = server_hostname
        self.server_name = server_name
        self._file = RotatingLog(directory, PREFIX, settings.max_file_size, settings.max_age,
                                 settings.max_directory_size)

    def event(
        self,
        event_id: str,
        info: MessageInfo | None = None,
        *,
        source: str = "SMTP",
        recipients: list[str] | None = None,
        recipient_status: list[str] | None = None,
        connector_id: str | None = None,
        server_ip: str | None = None,
        reference: str | None = None,
        related_recipients: list[str] | None = None,
        extra: dict[str, Any] | None = None,
        timestamp: float | None = None,
    ) -> None:
        if not self.settings.enabled:
            return
        record: dict[str, Any] = {
            "Timestamp": iso(timestamp or time.time()),
            "EventId": event_id,
            "Source": source,
            "ServerHostname": self.server_hostname,
            "ServerName": self.server_name,
        }
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
        if connector_id is not None:
            record["ConnectorId"] = connector_id
        if server_ip is not None:
            record["ServerIp"] = server_ip
        if recipients is not None:
            record["Recipients"] = recipients
            record["RecipientCount"] = len(recipients)
        if recipient_status is not None:
            record["RecipientStatus"] = recipient_status
        if related_recipients:
            record["RelatedRecipientAddress"] = related_recipients
        if reference is not None:
            record["Reference"] = reference
        if extra:
            record.update(extra)
        self._file.write(json.dumps({k: v for k, v in record.items() if v is not None}, ensure_ascii=False))

    def flush(self) -> None:
        self._file.flush()


def log_files(directory: Path) -> list[Path]:
    return RotatingLog(directory, PREFIX, None, 0, None).files()
