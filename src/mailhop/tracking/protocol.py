"""SMTP protocol logs, as Exchange writes them for connectors with ProtocolLoggingLevel Verbose.

``<data_dir>/logs/ProtocolLog/SmtpSend/SENDyyyymmdd-N.log`` and ``.../SmtpReceive/RECV...``:
CSV lines with Exchange's fields ``date-time, connector-id, session-id,
sequence-number, local-endpoint, remote-endpoint, event, data, context`` and its
event characters: ``+`` connect, ``-`` disconnect, ``>`` sent, ``<`` received,
``*`` information.  AUTH secrets never reach these files: the SMTP layers hand
over ``****`` in their place.
"""

from __future__ import annotations

import csv
import io
import itertools
from dataclasses import dataclass, field
from pathlib import Path

from mailhop import __version__
from mailhop.clock import Clock
from mailhop.config import ProtocolLogSettings
from mailhop.tracking.files import RotatingLog
from mailhop.tracking.log import iso

FIELDS = "date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context"


class ProtocolLog:
    def __init__(self, data_dir: Path, send: bool, settings: ProtocolLogSettings, clock: Clock) -> None:
        kind = "Send" if send else "Receive"
        self.clock = clock
        self.log_type = f"SMTP {kind} Protocol Log"
        self._file = RotatingLog(data_dir / "logs" / "ProtocolLog" / f"Smtp{kind}", "SEND" if send else "RECV",
                                 settings.max_file_size, settings.max_age, settings.max_directory_size,
                                 clock, header=self._header)

    def _header(self) -> str:
        return (f"#Software: mailhop\n#Version: {__version__}\n#Log-Type: {self.log_type}\n"
                f"#Date: {iso(self.clock.now())}\n#Fields: {FIELDS}\n")

    def write(self, connector: str, session: str, seq: int, local: str, remote: str, event: str,
              data: str, context: str = "") -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow(
            [iso(self.clock.now()),
             connector, session, seq, local, remote, event, data, context])
        self._file.write(buf.getvalue())

    def flush(self) -> None:
        self._file.flush()


_sessions = itertools.count(1)


@dataclass
class SessionTrace:
    """One outbound session's lines in the send protocol log."""

    log: ProtocolLog
    connector: str
    remote: str
    local: str = ""
    session: str = field(default_factory=lambda: f"{next(_sessions):016X}")
    seq: int = 0

    def __call__(self, event: str, data: str, context: str = "") -> None:
        self.log.write(self.connector, self.session, self.seq, self.local, self.remote, event, data, context)
        self.seq += 1
