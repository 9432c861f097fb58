"""Send connectors: Exchange's properties, defaults and validation rules.

A ``SendConnector`` is an immutable value.  ``PROPERTIES`` is the one table that
maps each Exchange property (``AddressSpaces``, ``DNSRoutingEnabled``...) to its
Python attribute, its kebab-case CLI option and its parser; the CLI, the JSON
export and the store all go through it.  ``validate`` enforces Exchange's
cross-field rules (reference section 1) and raises ``ValidationError`` with one
line an administrator can act on (the rules are in ``connector_rules``).  Nothing
here touches the store.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mailhop.errors import ValidationError
from mailhop.model.address_space import (
    AddressSpace,
    is_valid_domain,
    parse_address_spaces,
    split_list,
)
from mailhop.model.connector_rules import validate
from mailhop.model.connector_values import SmartHost, check_sender_scope, sender_scope_specificity
from mailhop.units import format_size, format_timespan, parse_duration, parse_size

USAGES = ("Custom", "Internal", "Internet", "Partner")
TLS_AUTH_LEVELS = ("EncryptionOnly", "CertificateValidation", "DomainValidation")
# XOAUTH2 is mailhop's addition (Exchange's smart-host auth knows only Basic).
AUTH_MECHANISMS = ("None", "BasicAuth", "BasicAuthRequireTLS", "ExternalAuthoritative", "XOAUTH2")
LOGGING_LEVELS = ("None", "Verbose")
# Exchange Online's names for the per-connector DANE and MTA-STS modes (DNS-routing connectors).
DANE_MODES = ("None", "Opportunistic", "Mandatory")
STS_MODES = ("None", "Opportunistic")

DEFAULT_MAX_MESSAGE_SIZE = 35 * 1024 * 1024
MAX_MESSAGE_SIZE_LIMIT = 2147483647
NAME_MAX_LENGTH = 64


@dataclass(frozen=True, slots=True)
class SendConnector:
    name: str
    address_spaces: tuple[AddressSpace, ...]
    guid: str = field(default_factory=lambda: str(uuid.uuid4()))
    usage: str = "Custom"
    dns_routing_enabled: bool = True
    smart_hosts: tuple[SmartHost, ...] = ()
    port: int = 25
    fqdn: str | None = None
    max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE
    enabled: bool = True
    smtp_max_messages_per_connection: int = 20
    connection_inactivity_timeout: float = 600.0
    protocol_logging_level: str = "None"
    comment: str = ""
    source_transport_servers: tuple[str, ...] = ()
    sender_domains: tuple[str, ...] = ()
    require_tls: bool = False
    tls_auth_level: str | None = None
    tls_domain: str | None = None
    tls_certificate_name: str | None = None
    ignore_starttls: bool = False
    smart_host_auth_mechanism: str = "None"
    authentication_credential: str | None = None
    cloud_services_mail_enabled: bool = False
    force_helo: bool = False
    tls_wrapper: bool = False
    authentication_token_file: str | None = None
    smtp_dane_mode: str = "None"
    mta_sts_mode: str = "None"

    @property
    def implicit_tls(self) -> bool:
        """TLS from the first byte: asked for, or the submissions port 465."""
        return self.tls_wrapper or (not self.dns_routing_enabled and any(
            (h.port or self.port) == 465 for h in self.smart_hosts))

    def match_recipient(self, domain: str) -> tuple[tuple[int, int], AddressSpace] | None:
        """The best-matching address space (most specific, then cheapest) and its specificity."""
        best: tuple[tuple[int, int], AddressSpace] | None = None
        for space in self.address_spaces:
            spec = space.match(domain)
            if spec is None:
                continue
            if best is None or spec > best[0] or (spec == best[0] and space.cost < best[1].cost):
                best = (spec, space)
        return best

    def match_sender(self, sender: str) -> int | None:
        """0 when unscoped; the scope's specificity when it matches; None when it does not."""
        if not self.sender_domains:
            return 0
        specs = [s for s in (sender_scope_specificity(x, sender) for x in self.sender_domains) if s]
        return max(specs) if specs else None

    def is_source(self, server: str) -> bool:
        return server.lower() in (s.lower() for s in self.source_transport_servers)

    @property
    def delivery_type(self) -> str:
        return "DnsConnectorDelivery" if self.dns_routing_enabled else "SmartHostConnectorDelivery"


# --- value parsers (CLI strings and JSON values alike) ----------------------------------

def parse_bool(value: Any, prop: str = "value") -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower().lstrip("$")
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValidationError(f"{prop}: '{value}' is not a boolean (use true or false)")


def _choice(choices: tuple[str, ...], prop: str, nullable: bool = False) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        if value is None or (nullable and str(value).strip().lower() in ("", "null", "$null")):
            if nullable:
                return None
            raise ValidationError(f"{prop}: a value is required")
        for choice in choices:
            if str(value).strip().lower() == choice.lower():
                return choice
        raise ValidationError(f"{prop}: '{value}' is not one of {', '.join(choices)}")

    return parse


def _int(low: int, high: int, prop: str) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        try:
            number = int(str(value).strip())
        except ValueError:
            raise ValidationError(f"{prop}: '{value}' is not a whole number") from None
        if not low <= number <= high:
            raise ValidationError(f"{prop}: {number} is outside the allowed range {low}-{high}")
        return number

    return parse


def _size(value: Any) -> int | None:
    try:
        size = parse_size(value)
    except ValueError as exc:
        raise ValidationError(f"MaxMessageSize: {exc}") from None
    if size is not None and size > MAX_MESSAGE_SIZE_LIMIT:
        raise ValidationError(f"MaxMessageSize: {size} bytes is above the maximum {MAX_MESSAGE_SIZE_LIMIT}")
    return size


def _timeout(value: Any) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise ValidationError(f"ConnectionInactivityTimeOut: {exc}") from None
    if not 1 <= seconds <= 86400:
        raise ValidationError(
            "ConnectionInactivityTimeOut: must be between 00:00:01 and 1.00:00:00"
        )
    return seconds


def _optional_text(prop: str, check: Callable[[str], bool] | None = None) -> Callable[[Any], str | None]:
    def parse(value: Any) -> str | None:
        if value is None:
            return None
        text = str(value).strip()
        if text.lower() in ("", "null", "$null"):
            return None
        if check and not check(text):
            raise ValidationError(f"{prop}: '{text}' is not a valid domain name")
        return text.lower() if check else text

    return parse


def _name(value: Any) -> str:
    text = str(value).strip()
    if not text:
        raise ValidationError("Name: a connector name is required")
    if len(text) > NAME_MAX_LENGTH:
        raise ValidationError(f"Name: '{text}' is longer than {NAME_MAX_LENGTH} characters")
    if any(ord(c) < 32 for c in text) or "\\" in text:
        raise ValidationError(f"Name: '{text}' contains a control character or a backslash")
    return text


def _servers(value: Any) -> tuple[str, ...]:
    servers = tuple(split_list(value if isinstance(value, list | tuple) else str(value)))
    for server in servers:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", server):
            raise ValidationError(f"SourceTransportServers: '{server}' is not a server name")
    return servers


def _smart_hosts(value: Any) -> tuple[SmartHost, ...]:
    return tuple(SmartHost.parse(v) for v in split_list(value if isinstance(value, list | tuple) else str(value)))


def _sender_domains(value: Any) -> tuple[str, ...]:
    return tuple(check_sender_scope(v) for v in split_list(value if isinstance(value, list | tuple) else str(value)))


def _address_spaces(value: Any) -> tuple[AddressSpace, ...]:
    return parse_address_spaces(value if isinstance(value, list | tuple) else str(value))


@dataclass(frozen=True, slots=True)
class Property:
    exchange: str           # Exchange's property name: JSON key
    attr: str               # attribute of SendConnector
    parse: Callable[[Any], Any]
    dump: Callable[[Any], Any] = lambda v: v
    settable: bool = True   # False: only at creation (Usage)
    cli: str | None = None  # the CLI option where it is not derived from the name
    doc: str = ""

    @property
    def option(self) -> str:
        """The kebab-case CLI option, e.g. --dns-routing-enabled."""
        if self.cli:
            return self.cli
        return "--" + re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", self.exchange).lower()


PROPERTIES: tuple[Property, ...] = (
    Property("Name", "name", _name, doc="The connector's name (the last routing tie-breaker)."),
    Property("AddressSpaces", "address_spaces", _address_spaces, lambda v: [f"SMTP:{s.address};{s.cost}" if s.is_smtp else f"{s.type}:{s.address};{s.cost}" for s in v], doc="Recipient domains: '*', 'contoso.com', '*.contoso.com', optional 'smtp:' type and ';cost' (1-100)."),
    Property("Usage", "usage", _choice(USAGES, "Usage"), settable=False, doc="internal|internet|partner|custom (creation only; sets defaults)."),
    Property("DNSRoutingEnabled", "dns_routing_enabled", lambda v: parse_bool(v, "DNSRoutingEnabled"), doc="true: deliver to the recipient domain's MX; false: through --smart-hosts."),
    Property("SmartHosts", "smart_hosts", _smart_hosts, lambda v: [str(h) for h in v], doc="Comma-separated host, host:port or [ip] (requires --dns-routing-enabled false)."),
    Property("Port", "port", _int(0, 65535, "Port"), doc="Port of the next hop (default 25)."),
    Property("Fqdn", "fqdn", _optional_text("Fqdn", is_valid_domain), doc="Name said in EHLO/HELO (default: [server] fqdn)."),
    Property("MaxMessageSize", "max_message_size", _size, format_size, doc="e.g. 35MB or unlimited; larger messages skip this connector."),
    Property("Enabled", "enabled", lambda v: parse_bool(v, "Enabled"), doc="true|false; disabled connectors are ignored by routing."),
    Property("SmtpMaxMessagesPerConnection", "smtp_max_messages_per_connection", _int(1, 2147483647, "SmtpMaxMessagesPerConnection"), doc="Messages sent over one connection before it is closed (default 20)."),
    Property("ConnectionInactivityTimeOut", "connection_inactivity_timeout", _timeout, format_timespan, cli="--connection-inactivity-timeout", doc="Longest idle time of an outbound connection (default 00:10:00)."),
    Property("ProtocolLoggingLevel", "protocol_logging_level", _choice(LOGGING_LEVELS, "ProtocolLoggingLevel"), doc="None|Verbose: SMTP send protocol log for this connector."),
    Property("Comment", "comment", lambda v: "" if v is None else str(v), doc="Free text."),
    Property("SourceTransportServers", "source_transport_servers", _servers, list, doc="Servers that deliver through this connector (default: this server)."),
    Property("SenderDomains", "sender_domains", _sender_domains, list, doc="Only senders in these domains (or addresses) use this connector (sender-based routing)."),
    Property("RequireTLS", "require_tls", lambda v: parse_bool(v, "RequireTLS"), doc="true: never send in clear text."),
    Property("TlsAuthLevel", "tls_auth_level", _choice(TLS_AUTH_LEVELS, "TlsAuthLevel", nullable=True), doc="EncryptionOnly|CertificateValidation|DomainValidation (requires --require-tls true)."),
    Property("TlsDomain", "tls_domain", _optional_text("TlsDomain", lambda d: is_valid_domain(d[2:] if d.startswith("*.") else d)), doc="Name the next hop's certificate must match under DomainValidation."),
    Property("TlsCertificateName", "tls_certificate_name", _optional_text("TlsCertificateName"), doc="Client certificate to present (name from [[certificates]], or <I>issuer<S>subject)."),
    Property("IgnoreSTARTTLS", "ignore_starttls", lambda v: parse_bool(v, "IgnoreSTARTTLS"), doc="true: never use STARTTLS even when offered."),
    Property("SmartHostAuthMechanism", "smart_host_auth_mechanism", _choice(AUTH_MECHANISMS, "SmartHostAuthMechanism"), doc="None|BasicAuth|BasicAuthRequireTLS|ExternalAuthoritative."),
    Property("AuthenticationCredential", "authentication_credential", _optional_text("AuthenticationCredential"), doc="User name for smart-host AUTH (password from --password-file)."),
    Property("CloudServicesMailEnabled", "cloud_services_mail_enabled", lambda v: parse_bool(v, "CloudServicesMailEnabled"), doc="true: keep the organization's internal headers on the way out."),
    Property("ForceHELO", "force_helo", lambda v: parse_bool(v, "ForceHELO"), doc="true: say HELO instead of EHLO."),
    Property("TlsWrapper", "tls_wrapper", lambda v: parse_bool(v, "TlsWrapper"), doc="true: implicit TLS from the first byte (SMTPS, port 465; implied by port 465)."),
    Property("AuthenticationTokenFile", "authentication_token_file", _optional_text("AuthenticationTokenFile"), doc="File holding the OAuth access token for XOAUTH2 (read at each connection)."),
    Property("SmtpDaneMode", "smtp_dane_mode", _choice(DANE_MODES, "SmtpDaneMode"), doc="None|Opportunistic|Mandatory: DANE (RFC 7672) for direct delivery (default Opportunistic for --usage internet)."),
    Property("MtaStsMode", "mta_sts_mode", _choice(STS_MODES, "MtaStsMode"), doc="None|Opportunistic: honour the recipient domain's MTA-STS policy (default Opportunistic for --usage internet)."),
)
PROPERTY_BY_EXCHANGE = {p.exchange.lower(): p for p in PROPERTIES}


def _property(key: str) -> Property:
    prop = PROPERTY_BY_EXCHANGE.get(str(key).replace("-", "").lower())
    if prop is None:
        raise ValidationError(f"'{key}' is not a send connector property")
    return prop


_LIST_ATTRS = frozenset({"address_spaces", "smart_hosts", "source_transport_servers", "sender_domains"})


def _check_shape(prop: Property, value: Any) -> None:
    """JSON values must be scalars (lists of strings for list properties) and text valid Unicode:
    a JSON object is refused rather than str()-ed, a lone surrogate rather than stored."""
    if isinstance(value, list | tuple):
        if prop.attr not in _LIST_ATTRS:
            raise ValidationError(f"{prop.exchange}: one value is expected, not a list")
        if not all(isinstance(v, str) for v in value):
            raise ValidationError(f"{prop.exchange}: every item of the list must be a string")
        items: Iterable[Any] = value
    elif value is None or isinstance(value, str | bool | int | float):
        items = (value,)
    else:
        kind = "JSON object" if isinstance(value, Mapping) else type(value).__name__
        raise ValidationError(f"{prop.exchange}: a {kind} is not a valid value")
    for item in items:
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ValidationError(f"{prop.exchange}: the text is not valid Unicode") from None


def _parse(key: str, value: Any) -> tuple[str, Any]:
    """(attribute, parsed value); a value of the wrong shape (a JSON object, say) is a ValidationError."""
    prop = _property(key)
    _check_shape(prop, value)
    try:
        return prop.attr, prop.parse(value)
    except ValidationError:
        raise
    except (TypeError, ValueError, AttributeError):
        raise ValidationError(f"{prop.exchange}: {value!r} is not a valid value") from None


def new_connector(values: Mapping[str, Any], default_server: str) -> SendConnector:
    """Create a connector from Exchange-named values, with Exchange's defaults by usage."""
    given = dict(_parse(k, v) for k, v in values.items() if v is not None)
    if "name" not in given:
        raise ValidationError("Name: a connector name is required")
    if "address_spaces" not in given:
        raise ValidationError("AddressSpaces: at least one address space is required")
    usage = given.get("usage", "Custom")
    defaults: dict[str, Any] = {"source_transport_servers": (default_server,)}
    if usage == "Internal":
        defaults["max_message_size"] = None
    if usage == "Partner":
        # Partner connectors exist to force verified TLS towards their address spaces.
        defaults["require_tls"] = True
        defaults["tls_auth_level"] = "DomainValidation"
    if usage == "Internet" and given.get("dns_routing_enabled", True):
        # Secure by default on the open Internet (Exchange Online's defaults too).
        defaults["smtp_dane_mode"] = defaults["mta_sts_mode"] = "Opportunistic"
    connector = SendConnector(**{**defaults, **given})
    validate(connector)
    return connector


def update_connector(connector: SendConnector, values: Mapping[str, Any]) -> SendConnector:
    """Apply Set-SendConnector-style changes; Usage and Guid cannot change."""
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if not _property(key).settable:
            raise ValidationError(f"{_property(key).exchange} can only be chosen when the connector is created")
        attr, parsed = _parse(key, value)
        changes[attr] = parsed
    if changes.get("dns_routing_enabled") is False:
        # A connector turned into a smart-host connector keeps TlsAuthLevel, not the DNS modes.
        changes.setdefault("smtp_dane_mode", "None")
        changes.setdefault("mta_sts_mode", "None")
    updated = dataclasses.replace(connector, **changes)
    validate(updated)
    return updated


def to_exchange(c: SendConnector) -> dict[str, Any]:
    """The connector as JSON, keyed by Exchange's property names."""
    out: dict[str, Any] = {"Identity": c.name}
    for prop in PROPERTIES:
        out[prop.exchange] = prop.dump(getattr(c, prop.attr))
    out["Guid"] = c.guid
    return out


def from_exchange(data: Mapping[str, Any], check: bool = True) -> SendConnector:
    """Read back what ``to_exchange`` wrote (or an Exchange export with the same keys).

    ``check=False`` skips the cross-field rules (each value must still parse): how a
    quarantined connector is handed to a change that may repair it.
    """
    values = {k: v for k, v in data.items() if k.lower() not in ("identity", "guid")}
    if "Name" not in values and "Identity" in data:
        values["Name"] = data["Identity"]
    given = dict(_parse(k, v) for k, v in values.items() if k.replace("-", "").lower() in PROPERTY_BY_EXCHANGE)
    if data.get("Guid"):
        given["guid"] = str(data["Guid"])
    connector = SendConnector(**given)
    if check:
        validate(connector)
    return connector
