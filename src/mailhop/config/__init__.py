"""The server configuration: one typed schema, every default in this file.

Precedence: the TOML file (``--config``, default ``./mailhop.toml``; embedded
defaults when it does not exist), then ``MAILHOP_<SECTION>_<KEY>`` environment
variables (``MAILHOP_SERVER_NAME=EXCH02``), then command-line flags.  A broken
file, an unknown key or a bad value raises ``ConfigError`` with one line that
names the key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic import ValidationError as PydanticValidationError

from mailhop.config.receive import ReceiveConnectorSettings
from mailhop.config.sections import (
    AdminSettings,
    CertificateSettings,
    ClusterSettings,
    DeliverySettings,
    DkimSettings,
    DnsSettings,
    Duration,
    ProtocolLogSettings,
    QueueSettings,
    Section,
    ServerSettings,
    Size,
    TlsReportingSettings,
    TlsSettings,
    TrackingSettings,
    parse_ip_range,
    split_hostport,
)
from mailhop.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG_FILE", "AdminSettings", "CertificateSettings", "ClusterSettings", "DeliverySettings",
    "DkimSettings", "DnsSettings", "Duration", "ProtocolLogSettings", "QueueSettings", "ReceiveConnectorSettings", "ServerSettings",
    "Settings", "Size", "TlsReportingSettings", "TlsSettings", "TrackingSettings", "from_mapping", "load", "parse_ip_range", "split_hostport",
]

DEFAULT_CONFIG_FILE = "mailhop.toml"


class Settings(Section):
    server: ServerSettings = Field(default_factory=ServerSettings)
    receive_connectors: list[ReceiveConnectorSettings] = Field(default_factory=list)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    dns: DnsSettings = Field(default_factory=DnsSettings)
    dkim: DkimSettings = Field(default_factory=DkimSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    protocol_log: ProtocolLogSettings = Field(default_factory=ProtocolLogSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    tls: TlsSettings = Field(default_factory=TlsSettings)
    tls_reporting: TlsReportingSettings = Field(default_factory=TlsReportingSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)
    certificates: list[CertificateSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _defaults_and_checks(self) -> Settings:
        if not self.receive_connectors:
            default = ReceiveConnectorSettings(name=f"Default {self.server.name}")
            object.__setattr__(self, "receive_connectors", [default])
        names = [c.name.lower() for c in self.receive_connectors]
        if len(set(names)) != len(names):
            raise ValueError("receive_connectors: two connectors have the same name")
        certs = [c.name.lower() for c in self.certificates]
        if len(set(certs)) != len(certs):
            raise ValueError("certificates: two certificates have the same name")
        binds = [split_hostport(c.bind) for c in self.receive_connectors]
        if len(set(binds)) != len(binds):
            raise ValueError("receive_connectors: two connectors have the same bind address")
        return self

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir

    @property
    def sqlite_path(self) -> Path:
        store = self.server.store
        if store.startswith("sqlite:") and store != "sqlite:":
            return Path(store.removeprefix("sqlite:").removeprefix("//"))
        return self.server.data_dir / "mailhop.db"


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    sections = {
        "server": ServerSettings, "queue": QueueSettings, "delivery": DeliverySettings, "dns": DnsSettings,
        "tracking": TrackingSettings, "cluster": ClusterSettings, "protocol_log": ProtocolLogSettings,
        "tls": TlsSettings, "admin": AdminSettings,
    }
    for section, model in sections.items():
        for key, info in model.model_fields.items():  # type: ignore[attr-defined]
            var = f"MAILHOP_{section}_{key}".upper()
            if var in environ:
                value: Any = environ[var]
                if info.annotation is list or str(info.annotation).startswith("list"):
                    value = [v.strip() for v in value.split(",") if v.strip()]
                out.setdefault(section, {})[key] = value
    return out


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read the file (if any), apply environment and flag overrides, validate."""
    explicit = path is not None
    file = Path(path) if path is not None else Path(DEFAULT_CONFIG_FILE)
    data: dict[str, Any] = {}
    if file.exists():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{file}: cannot be read: {exc.strerror}") from None
    elif explicit and str(file) != DEFAULT_CONFIG_FILE:
        raise ConfigError(f"{file}: no such configuration file")
    data = _merge(data, _env_overrides(os.environ if environ is None else environ))
    if overrides:
        data = _merge(data, overrides)
    return from_mapping(data, str(file) if file.exists() else "configuration")


def from_mapping(data: Mapping[str, Any], source: str = "configuration") -> Settings:
    """Validate settings given as a mapping (the parsed file); ConfigError names the bad key."""
    try:
        return Settings.model_validate(data)
    except PydanticValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "config"
        message = err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{source}: {where}: {message}") from None
