"""The message tracking log: one JSON object per line, Exchange's event IDs and fields.

Files are ``<data_dir>/logs/MessageTracking/MSGTRKyyyymmdd-N.log`` (UTC date), a new
one when the date changes or the file passes ``max_file_size``; files older than
``max_age`` or beyond ``max_directory_size`` are deleted, oldest first.

Events written in one turn of the event loop leave in one write; a failure to
write is logged and never stops mail flow (the log is a record, not the queue).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

from mailhop.config import TrackingSettings
from mailhop.model.message import MessageInfo

log = logging.getLogger(__name__)

PREFIX = "MSGTRK"
_FILE = re.compile(rf"^{PREFIX}(\d{{8}})-(\d+)\.log$")


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
        self._pending: list[str] = []
        self._scheduled = False
        self._path: Path | None = None
        self._size = 0
        self._day = ""

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
        self._pending.append(json.dumps({k: v for k, v in record.items() if v is not None}, ensure_ascii=False))
        if not self._scheduled:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
                self._scheduled = True
            except RuntimeError:
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        data = ("\n".join(self._pending) + "\n").encode("utf-8")
        self._pending.clear()
        try:
            path = self._current(len(data))
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            self._size += len(data)
        except OSError as exc:
            log.error("message tracking log write failed: %s", exc)

    def _current(self, incoming: int) -> Path:
        day = dt.datetime.now(dt.UTC).strftime("%Y%m%d")
        if self._path is None or day != self._day or (
            self.settings.max_file_size is not None and self._size + incoming > self.settings.max_file_size
        ):
            self.directory.mkdir(parents=True, exist_ok=True)
            numbers = [
                int(m.group(2)) for p in self.directory.iterdir()
                if (m := _FILE.match(p.name)) and m.group(1) == day
            ]
            number = max(numbers, default=1)
            path = self.directory / f"{PREFIX}{day}-{number}.log"
            size = path.stat().st_size if path.exists() else 0
            if self.settings.max_file_size is not None and size and size + incoming > self.settings.max_file_size:
                number += 1
                path = self.directory / f"{PREFIX}{day}-{number}.log"
                size = 0
            self._path, self._size, self._day = path, size, day
            self._prune()
        return self._path

    def _prune(self) -> None:
        files = sorted(
            (p for p in self.directory.iterdir() if _FILE.match(p.name)), key=lambda p: p.stat().st_mtime
        )
        cutoff = time.time() - self.settings.max_age
        total = sum(p.stat().st_size for p in files)
        for p in files:
            if p == self._path:
                continue
            too_old = p.stat().st_mtime < cutoff
            too_big = self.settings.max_directory_size is not None and total > self.settings.max_directory_size
            if too_old or too_big:
                total -= p.stat().st_size
                try:
                    p.unlink()
                except OSError:
                    pass


def log_files(directory: Path) -> list[Path]:
    if not directory.exists():
        return []
    def key(p: Path) -> tuple[str, int]:
        m = _FILE.match(p.name)
        assert m
        return m.group(1), int(m.group(2))
    return sorted((p for p in directory.iterdir() if _FILE.match(p.name)), key=key)
