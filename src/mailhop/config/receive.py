"""``[[receive_connectors]]``: Exchange's receive connector settings, with their defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from mailhop.config.sections import Duration, Section, Size, parse_ip_range, split_hostport


class ReceiveConnectorSettings(Section):
    name: str
    bind: str = "127.0.0.1:2525"
    # Who may relay without AUTH: single IPs, CIDR blocks, or a-b ranges.
    remote_ip_ranges: list[str] = Field(default_factory=lambda: ["127.0.0.0/8", "::1"])
    max_message_size: Size = 36 * 1024 * 1024
    max_recipients_per_message: int = Field(default=5000, ge=1)
    # Exchange's names: idle time allowed between commands (421 4.4.2), and the longest a whole
    # session may last, whatever it does (421 4.3.2): a slowloris client cannot hold a slot.
    connection_inactivity_timeout: Duration = 300.0
    connection_timeout: Duration = 600.0
    # Name in the banner and the Received: stamp; defaults to [server] fqdn.
    fqdn: str | None = None
    max_inbound_connections: int = Field(default=5000, ge=1)
    # Sessions at once from one address (one /64 for IPv6); more get 421 4.3.2.  Exchange's
    # default is 20; 200 leaves room for an application (or a benchmark) on one host.
    max_inbound_connection_per_source: int = Field(default=200, ge=1)
    protocol_logging_level: str = "None"
    # STARTTLS with this certificate (PEM chain) and key.
    tls_certificate: Path | None = None
    tls_key: Path | None = None
    # Refuse MAIL before STARTTLS (530 5.7.0).
    require_tls: bool = False
    # Offer AUTH PLAIN/LOGIN (users from [server] users_file), only after STARTTLS.
    auth: bool = True
    # Delay before answering a failed AUTH, growing with each failure of the session.
    failed_login_delay: Duration = 1.0
    # Offer BINARYMIME (RFC 3030, Exchange's BinaryMimeEnabled): binary bodies in BDAT chunks.
    # Off by default: mailhop does not convert them, so such a message only leaves to next hops
    # that offer BINARYMIME too (others fail it with 5.6.3).
    binary_mime_enabled: bool = False

    @model_validator(mode="after")
    def _timeouts(self) -> ReceiveConnectorSettings:
        if self.connection_timeout < self.connection_inactivity_timeout:
            raise ValueError("connection_timeout (the whole session) must not be shorter than "
                             "connection_inactivity_timeout (between commands)")
        return self

    @model_validator(mode="after")
    def _tls_pair(self) -> ReceiveConnectorSettings:
        if (self.tls_certificate is None) != (self.tls_key is None):
            raise ValueError("tls_certificate and tls_key go together")
        if self.require_tls and self.tls_certificate is None:
            raise ValueError("require_tls needs tls_certificate and tls_key")
        return self

    @field_validator("remote_ip_ranges")
    @classmethod
    def _ranges(cls, v: list[str]) -> list[str]:
        for item in v:
            try:
                parse_ip_range(item)
            except ValueError:
                raise ValueError(f"'{item}' is not an IP address, CIDR block or a-b range") from None
        return v

    @field_validator("bind")
    @classmethod
    def _bind(cls, v: str) -> str:
        split_hostport(v)
        return v

    @field_validator("protocol_logging_level")
    @classmethod
    def _logging(cls, v: str) -> str:
        for choice in ("None", "Verbose"):
            if v.lower() == choice.lower():
                return choice
        raise ValueError("must be None or Verbose")

    def ranges(self) -> list[tuple[Any, Any]]:
        return [parse_ip_range(r) for r in self.remote_ip_ranges]
