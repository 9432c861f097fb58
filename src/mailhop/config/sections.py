"""The sections of the server configuration, each with its defaults (``[server]``, ``[queue]``...).

Every default of mailhop lives in these classes (and in ``config.receive`` for
``[[receive_connectors]]``); ``config.Settings`` puts them together.  A bad value raises
``ValueError`` naming it; ``config.load`` turns that into one ``ConfigError`` line.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from mailhop.model.address_space import is_valid_domain
from mailhop.units import parse_duration, parse_size

Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int | None, BeforeValidator(parse_size)]



MAX_WORKERS = 64


def cpus() -> int:
    """The CPUs this process may run on (its affinity, as a container or taskset limits it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _workers(value: object) -> int:
    """``"auto"``: one worker per CPU the process may use (at most 64); a number overrides."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return min(cpus(), MAX_WORKERS)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError('workers must be "auto" or a number from 1 to 64')
    try:
        number = int(value)
    except ValueError:
        raise ValueError('workers must be "auto" or a number from 1 to 64') from None
    if not 1 <= number <= MAX_WORKERS:
        raise ValueError('workers must be "auto" or a number from 1 to 64')
    return number


Workers = Annotated[int, BeforeValidator(_workers)]


def _default_name() -> str:
    return (socket.gethostname().split(".")[0] or "MAILHOP").upper()


def _default_fqdn() -> str:
    fqdn = socket.getfqdn()
    return fqdn if is_valid_domain(fqdn) else "localhost.localdomain"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(Section):
    name: str = Field(default_factory=_default_name)
    fqdn: str = Field(default_factory=_default_fqdn)
    data_dir: Path = Path("data")
    store: str = "sqlite"
    # Sender of NDRs and delay DSNs (From: header); the envelope sender is always <>.
    postmaster: str = ""
    # More Received: headers than this is a mail loop: 5.4.6 NDR.
    max_hop_count: int = Field(default=30, ge=1, le=1000)
    # How long SIGTERM waits for in-flight sessions and deliveries before abandoning them.
    shutdown_timeout: Duration = 30.0
    # How often the server looks for changes made by the CLI or other servers.
    config_poll_interval: Duration = 1.0
    # Worker processes sharing the listening sockets (SO_REUSEPORT) and the store, each a full
    # transport (receive and deliver): "auto" is one per CPU the process may use, so that one
    # server uses every core out of the box; a number overrides.  Outbound limits are the
    # server's, shared out among the workers (workers.share).
    workers: Workers = Field(default_factory=lambda: _workers("auto"))
    # SMTP AUTH users of the receive connectors (``mailhop user add``); default data_dir/users.
    users_file: Path | None = None
    # The key that seals stored secrets (smart-host passwords), made on first use; default
    # data_dir/secret.key.  Every server of a cluster needs the same one; keep it out of the
    # store's backups, which then reveal no secret on their own.
    secret_key_file: Path | None = None
    # Where AuthenticationTokenFile (XOAUTH2 access tokens) may point: nothing outside it is
    # read; default data_dir/tokens.  A relative AuthenticationTokenFile is taken from here.
    token_directory: Path | None = None
    # The public addresses this server's mail leaves from (as receivers see them, past any
    # NAT): what ``mailhop domain check`` holds against SPF and reverse DNS.
    outbound_ips: list[str] = Field(default_factory=list)

    @field_validator("outbound_ips")
    @classmethod
    def _outbound_ips(cls, v: list[str]) -> list[str]:
        out = []
        for item in v:
            try:
                out.append(str(ipaddress.ip_address(item.strip())))
            except ValueError:
                raise ValueError(f"'{item}' is not an IP address") from None
        return out

    @property
    def users_path(self) -> Path:
        return self.users_file or self.data_dir / "users"

    @property
    def secret_key_path(self) -> Path:
        return self.secret_key_file or self.data_dir / "secret.key"

    @property
    def token_path(self) -> Path:
        return self.token_directory or self.data_dir / "tokens"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", v):
            raise ValueError(f"'{v}' is not a valid server name")
        return v

    @field_validator("fqdn")
    @classmethod
    def _fqdn(cls, v: str) -> str:
        if not is_valid_domain(v):
            raise ValueError(f"'{v}' is not a valid host name")
        return v.lower()

    @field_validator("store")
    @classmethod
    def _store(cls, v: str) -> str:
        if v == "sqlite" or v.startswith(("sqlite:", "postgresql://", "postgres://")):
            return v
        raise ValueError(f"'{v}' is not a supported store (use 'sqlite', 'sqlite:PATH' or 'postgresql://...')")

    @property
    def postmaster_address(self) -> str:
        return self.postmaster or f"postmaster@{self.fqdn}"


def parse_ip_range(text: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """An IP, a CIDR block or an ``a-b`` range, as Exchange's RemoteIPRanges."""
    text = text.strip()
    if "-" in text:
        low_text, high_text = (p.strip() for p in text.split("-", 1))
        low, high = ipaddress.ip_address(low_text), ipaddress.ip_address(high_text)
        if low.version != high.version or low > high:  # type: ignore[operator]
            raise ValueError(f"'{text}' is not a valid IP range")
        return low, high
    net = ipaddress.ip_network(text, strict=False)
    return net[0], net[-1]


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_hostport(value: str) -> tuple[str, int]:
    m = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\[\]]*):(\d+)", value.strip())
    if not m:
        raise ValueError(f"'{value}' is not HOST:PORT")
    host = m.group(1) or m.group(3) or "0.0.0.0"
    port = int(m.group(2) or m.group(4))
    if not 0 <= port <= 65535:
        raise ValueError(f"'{value}' has a port outside 0-65535")
    return host, port


class QueueSettings(Section):
    # Retry of individual messages, and the steady retry interval of a queue in Retry.
    message_retry_interval: Duration = 300.0
    message_expiration_timeout: Duration = 2 * 86400.0
    delay_notification_timeout: Duration = 4 * 3600.0
    # Exchange's schedule after a failure: a few quick "glitch" retries, then the
    # transient ones, then message_retry_interval until expiry.
    glitch_retry_count: int = Field(default=4, ge=0, le=15)
    glitch_retry_interval: Duration = 60.0
    transient_retry_count: int = Field(default=6, ge=0, le=15)
    transient_retry_interval: Duration = 300.0
    # Fraction of each retry interval added at random, so a restart does not retry everything at once.
    retry_jitter: float = Field(default=0.1, ge=0, le=1)
    # Crashes while a message is handled before it goes to the Poison queue.
    poison_threshold: int = Field(default=2, ge=1, le=10)
    # Messages handed straight from receive to delivery without a trip through the store;
    # beyond this, mail waits on disk (bodies are never held in memory for waiting mail).
    max_in_memory: int = Field(default=2000, ge=0)
    # Attach the original message to NDRs up to this size; headers only above it.
    ndr_max_attach_size: Size = 10 * 1024 * 1024
    # Back pressure (Exchange) / queue_minfree (Postfix): MAIL is answered "452 4.3.1" while the
    # file system of data_dir has less than this free, plus the SIZE the client declared.
    min_free_space: Size = 100 * 1024 * 1024

    @model_validator(mode="after")
    def _delay_vs_expiry(self) -> QueueSettings:
        if self.message_retry_interval <= 0:
            raise ValueError("message_retry_interval must be greater than 0")
        return self


class DeliverySettings(Section):
    max_outbound_connections: int = Field(default=1000, ge=1)
    max_per_domain_outbound_connections: int = Field(default=20, ge=1)
    connect_timeout: Duration = 30.0
    # Timeout of each SMTP command and of the end of DATA.
    command_timeout: Duration = 300.0
    # An idle outbound connection is kept this long for the next message to the
    # same next hop (never longer than the connector's ConnectionInactivityTimeOut).
    connection_cache_time: Duration = 5.0
    # MX hosts tried for one domain, in preference order (RFC 5321 asks senders to bound it).
    max_mx_hosts: int = Field(default=5, ge=1, le=50)
    # Deliver to MX hosts at loopback, private or link-local addresses (a lab, a test, an
    # internal DNS); off, a domain whose MX points into the server's own network is not tried.
    allow_private_mx: bool = False


class DnsSettings(Section):
    # DNS servers as "ip" or "ip:port"; empty: the system's resolver (/etc/resolv.conf).
    nameservers: list[str] = Field(default_factory=list)
    # Exchange's fixed timeouts: 5 seconds a server, 1 minute for the whole query.
    timeout: Duration = 5.0
    lifetime: Duration = 60.0
    # "trust-ad": an answer is DNSSEC-secure when the nameservers say so (the AD bit), which
    # is what DANE needs; they should be a validating resolver on this machine (unbound).
    # "off": nothing is ever secure, DANE is never used.
    dnssec: Literal["trust-ad", "off"] = "trust-ad"

    @field_validator("nameservers")
    @classmethod
    def _servers(cls, v: list[str]) -> list[str]:
        for item in v:
            host = item.strip()
            if host.startswith("["):
                host = host[1:].partition("]")[0]
            elif host.count(":") == 1:
                host, port = host.split(":")
                if not port.isdigit() or not 0 < int(port) < 65536:
                    raise ValueError(f"'{item}' has an invalid port")
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise ValueError(f"'{item}' is not an IP address or IP:port") from None
        return v


class DkimSettings(Section):
    # How often the server looks the DKIM selectors up in DNS: the Status of every signing
    # config, and the switch to a rotated key once its record is published.
    check_interval: Duration = Field(default=300.0, gt=0)


class TlsReportingSettings(Section):
    # RFC 8460 reports of the sessions mailhop made, once a day, to every domain that publishes
    # _smtp._tls.<domain> (rua mailto: or https:).
    enabled: bool = True
    organization_name: str = ""   # default: [server] fqdn
    contact_info: str = ""        # default: the postmaster address
    sender: str = ""              # From: of mailed reports; default: the postmaster address
    # How often the counts in memory are added to the store (a cluster's servers add to the
    # same rows), and how often the server looks for finished days to report.
    flush_interval: Duration = Field(default=60.0, gt=0)
    send_interval: Duration = Field(default=3600.0, gt=0)


class TrackingSettings(Section):
    enabled: bool = True
    max_file_size: Size = 10 * 1024 * 1024
    max_age: Duration = 30 * 86400.0
    max_directory_size: Size = 1000 * 1024 * 1024
    subject_logging: bool = True


class ProtocolLogSettings(Section):
    # Shared by every connector whose ProtocolLoggingLevel is Verbose (Exchange's defaults).
    max_file_size: Size = 10 * 1024 * 1024
    max_age: Duration = 30 * 86400.0
    max_directory_size: Size = 250 * 1024 * 1024


class TlsSettings(Section):
    # Trust anchors for CertificateValidation/DomainValidation: the system store, plus
    # (or, with use_system_ca = false, instead of) the CAs in ca_file.
    ca_file: Path | None = None
    use_system_ca: bool = True
    # Certificate revocation lists (PEM); with one, revoked certificates are refused.
    crl_file: Path | None = None
    # MTA-STS policy fetches (https://mta-sts.<domain>/...): the whole request, connect to body.
    mta_sts_fetch_timeout: Duration = 10.0
    # How long a domain's MTA-STS state (its TXT id, or that it has none) is trusted in memory
    # before the TXT record is asked again; the policy itself is cached in the store for its max_age.
    mta_sts_recheck_interval: Duration = 300.0

    @model_validator(mode="after")
    def _anchors(self) -> TlsSettings:
        if not self.use_system_ca and self.ca_file is None:
            raise ValueError("use_system_ca = false needs ca_file")
        return self


class CertificateSettings(Section):
    # The name connectors use in TlsCertificateName (its <I>issuer<S>subject form works too).
    name: str
    cert_file: Path
    key_file: Path


class AdminSettings(Section):
    # The REST API and web console; loopback by default, and every request needs a token.
    enabled: bool = True
    bind: str = "127.0.0.1:8025"
    # How long a browser session lasts after signing in with a token.
    session_lifetime: Duration = 8 * 3600.0
    # HTTPS with this certificate (PEM chain) and key: needed to bind beyond loopback, where
    # tokens and session cookies would otherwise cross the network in clear ...
    tls_certificate: Path | None = None
    tls_key: Path | None = None
    # ... unless this says a TLS proxy in front of it (or a private network) takes care of that.
    allow_insecure_bind: bool = False

    @field_validator("bind")
    @classmethod
    def _bind(cls, v: str) -> str:
        split_hostport(v)
        return v

    @model_validator(mode="after")
    def _tls(self) -> AdminSettings:
        if (self.tls_certificate is None) != (self.tls_key is None):
            raise ValueError("tls_certificate and tls_key go together")
        host = split_hostport(self.bind)[0]
        if not is_loopback(host) and self.tls_certificate is None and not self.allow_insecure_bind:
            raise ValueError(f"'{self.bind}' is not a loopback address: give tls_certificate and tls_key (HTTPS), "
                             "or allow_insecure_bind = true behind a TLS proxy")
        return self


class ClusterSettings(Section):
    # A lease not renewed for this long belongs to a dead server; another takes its mail.
    lease_timeout: Duration = 60.0
    heartbeat_interval: Duration = 10.0
