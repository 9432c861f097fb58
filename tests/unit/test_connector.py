"""mailhop.model.connector: send connector defaults, validation rules and serialisation."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from mailhop.errors import ValidationError
from mailhop.model.address_space import AddressSpace
from mailhop.model.connector import (
    PROPERTIES,
    PROPERTY_BY_EXCHANGE,
    SendConnector,
    SmartHost,
    from_exchange,
    new_connector,
    sender_scope_specificity,
    to_exchange,
    update_connector,
    validate,
)

SERVER = "EXCH01"
BASE: dict[str, Any] = {"Name": "To Internet", "AddressSpaces": "*"}
SMART_HOST: dict[str, Any] = {"DNSRoutingEnabled": False, "SmartHosts": "relay.example.com"}


def make(**values: Any) -> SendConnector:
    return new_connector({**BASE, **values}, SERVER)


# --- defaults by usage --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("usage", "max_size", "require_tls", "tls_auth_level"),
    [
        ("Custom", 36_700_160, False, None),
        ("Internal", None, False, None),
        ("Internet", 36_700_160, False, None),
        ("Partner", 36_700_160, True, "DomainValidation"),
    ],
)
def test_defaults_by_usage(
    usage: str, max_size: int | None, require_tls: bool, tls_auth_level: str | None
) -> None:
    c = make(Usage=usage)
    assert c.usage == usage
    assert c.max_message_size == max_size
    assert c.require_tls is require_tls
    assert c.tls_auth_level == tls_auth_level


def test_usage_defaults_to_custom() -> None:
    c = make()
    assert c.usage == "Custom"
    assert c.max_message_size == 35 * 1024 * 1024


@pytest.mark.parametrize(
    ("attr", "expected"),
    [
        ("dns_routing_enabled", True),
        ("smart_hosts", ()),
        ("port", 25),
        ("fqdn", None),
        ("enabled", True),
        ("smtp_max_messages_per_connection", 20),
        ("connection_inactivity_timeout", 600.0),
        ("protocol_logging_level", "None"),
        ("require_tls", False),
        ("tls_auth_level", None),
        ("tls_domain", None),
        ("ignore_starttls", False),
        ("smart_host_auth_mechanism", "None"),
        ("authentication_credential", None),
        ("sender_domains", ()),
        ("force_helo", False),
        ("cloud_services_mail_enabled", False),
    ],
)
def test_exchange_defaults(attr: str, expected: Any) -> None:
    assert getattr(make(), attr) == expected


def test_source_transport_servers_default_to_the_given_server() -> None:
    assert new_connector(BASE, "EXCH07").source_transport_servers == ("EXCH07",)


def test_explicit_source_transport_servers_replace_the_default() -> None:
    c = make(SourceTransportServers="EXCH02, EXCH03")
    assert c.source_transport_servers == ("EXCH02", "EXCH03")


def test_usage_lookup_is_case_insensitive() -> None:
    assert make(Usage="internal").usage == "Internal"


def test_explicit_values_override_usage_defaults() -> None:
    c = make(Usage="Internal", MaxMessageSize="10MB")
    assert c.max_message_size == 10 * 1024 * 1024
    p = make(Usage="Partner", TlsAuthLevel="CertificateValidation")
    assert (p.require_tls, p.tls_auth_level) == (True, "CertificateValidation")


def test_values_are_parsed() -> None:
    c = make(
        AddressSpaces=["contoso.com;5", "*.fabrikam.com"],
        Port="587",
        MaxMessageSize="20 MB",
        ConnectionInactivityTimeOut="00:05:00",
        Enabled="false",
        ProtocolLoggingLevel="verbose",
    )
    assert c.address_spaces == (
        AddressSpace("contoso.com", 5),
        AddressSpace("*.fabrikam.com", 1),
    )
    assert c.port == 587
    assert c.max_message_size == 20 * 1024 * 1024
    assert c.connection_inactivity_timeout == 300.0
    assert c.enabled is False
    assert c.protocol_logging_level == "Verbose"


def test_new_connectors_get_distinct_guids() -> None:
    assert make().guid != make().guid


@pytest.mark.parametrize(
    "values",
    [
        {"AddressSpaces": "*"},  # no name
        {"Name": "x"},  # no address space
    ],
)
def test_name_and_address_spaces_are_required(values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        new_connector(values, SERVER)


# --- validation rules ---------------------------------------------------------------------


VALID_CASES: list[tuple[str, dict[str, Any]]] = [
    ("dns", {}),
    ("smart host", SMART_HOST),
    ("smart host port", {**SMART_HOST, "SmartHosts": "relay.example.com:587", "Port": 2525}),
    ("require tls", {"RequireTLS": True}),
    ("tls levels", {"RequireTLS": True, "TlsAuthLevel": "CertificateValidation"}),
    ("dns domain validation", {"RequireTLS": True, "TlsAuthLevel": "DomainValidation"}),
    (
        "smart host domain validation",
        {**SMART_HOST, "RequireTLS": True, "TlsAuthLevel": "DomainValidation", "TlsDomain": "example.com"},
    ),
    ("dns tls domain", {"RequireTLS": True, "TlsAuthLevel": "DomainValidation", "TlsDomain": "*.contoso.com"}),
    ("ignore starttls", {"IgnoreSTARTTLS": True}),
    ("basic auth", {**SMART_HOST, "SmartHostAuthMechanism": "BasicAuth", "AuthenticationCredential": "relay"}),
    (
        "basic auth tls",
        {**SMART_HOST, "SmartHostAuthMechanism": "BasicAuthRequireTLS", "AuthenticationCredential": "relay"},
    ),
    ("x400 via smart host", {**SMART_HOST, "AddressSpaces": "X400:o=MySite;p=MyOrg;a=adatum;c=us;1"}),
    ("port zero", {"Port": 0}),
    ("port max", {"Port": 65535}),
    ("partner smart host", {**SMART_HOST, "Usage": "Partner", "TlsDomain": "example.com"}),
]


@pytest.mark.parametrize("values", [v for _, v in VALID_CASES], ids=[n for n, _ in VALID_CASES])
def test_valid_connectors_are_accepted(values: dict[str, Any]) -> None:
    c = make(**values)
    validate(c)  # idempotent: a created connector validates again


INVALID_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("smart hosts with DNS routing", {"SmartHosts": "relay.example.com"}, "DNSRoutingEnabled"),
    ("DNS routing off without smart hosts", {"DNSRoutingEnabled": False}, "SmartHosts"),
    ("TlsAuthLevel without RequireTLS", {"TlsAuthLevel": "EncryptionOnly"}, "RequireTLS"),
    (
        "TlsDomain with CertificateValidation",
        {"RequireTLS": True, "TlsAuthLevel": "CertificateValidation", "TlsDomain": "contoso.com"},
        "DomainValidation",
    ),
    ("TlsDomain without TlsAuthLevel", {"TlsDomain": "contoso.com"}, "DomainValidation"),
    (
        "DomainValidation on smart hosts without TlsDomain",
        {**SMART_HOST, "RequireTLS": True, "TlsAuthLevel": "DomainValidation"},
        "TlsDomain",
    ),
    ("Partner smart host without TlsDomain", {**SMART_HOST, "Usage": "Partner"}, "TlsDomain"),
    ("IgnoreSTARTTLS with RequireTLS", {"RequireTLS": True, "IgnoreSTARTTLS": True}, "IgnoreSTARTTLS"),
    ("Partner with IgnoreSTARTTLS", {"Usage": "Partner", "IgnoreSTARTTLS": True}, "IgnoreSTARTTLS"),
    ("BasicAuth without credential", {**SMART_HOST, "SmartHostAuthMechanism": "BasicAuth"}, "AuthenticationCredential"),
    (
        "BasicAuthRequireTLS without credential",
        {**SMART_HOST, "SmartHostAuthMechanism": "BasicAuthRequireTLS"},
        "AuthenticationCredential",
    ),
    ("auth on a DNS connector", {"SmartHostAuthMechanism": "ExternalAuthoritative"}, "smart-host"),
    ("non-SMTP space with DNS routing", {"AddressSpaces": "X400:o=MySite;p=MyOrg;a=adatum;c=us;1"}, "non-SMTP"),
    ("no source servers", {"SourceTransportServers": []}, "SourceTransportServers"),
    ("unknown usage", {"Usage": "Bogus"}, "Usage"),
    ("port above 65535", {"Port": 70000}, "Port"),
    ("negative port", {"Port": -1}, "Port"),
    ("port not a number", {"Port": "smtp"}, "Port"),
    ("smart host bad syntax", {**SMART_HOST, "SmartHosts": "bad_host"}, "SmartHosts"),
    ("smart host bad port", {**SMART_HOST, "SmartHosts": "relay.example.com:99999"}, "SmartHosts"),
    ("smart host port text", {**SMART_HOST, "SmartHosts": "relay.example.com:smtp"}, "SmartHosts"),
    ("unknown TlsAuthLevel", {"RequireTLS": True, "TlsAuthLevel": "Strict"}, "TlsAuthLevel"),
    ("unknown auth mechanism", {**SMART_HOST, "SmartHostAuthMechanism": "Kerberos"}, "SmartHostAuthMechanism"),
    ("bad boolean", {"RequireTLS": "maybe"}, "RequireTLS"),
    ("MaxMessageSize above Int32", {"MaxMessageSize": "3GB"}, "MaxMessageSize"),
    ("MaxMessageSize garbage", {"MaxMessageSize": "big"}, "MaxMessageSize"),
    ("timeout zero", {"ConnectionInactivityTimeOut": "0s"}, "ConnectionInactivityTimeOut"),
    ("timeout above a day", {"ConnectionInactivityTimeOut": "1.00:00:01"}, "ConnectionInactivityTimeOut"),
    ("empty name", {"Name": "  "}, "Name"),
    ("long name", {"Name": "x" * 65}, "Name"),
    ("backslash in name", {"Name": "a\\b"}, "Name"),
    ("bad sender scope", {"SenderDomains": "not a domain"}, "SenderDomains"),
    ("bad server name", {"SourceTransportServers": "bad server!"}, "SourceTransportServers"),
    ("bad fqdn", {"Fqdn": "bad_host"}, "Fqdn"),
    ("bad address space", {"AddressSpaces": "*contoso.com"}, "AddressSpaces"),
    ("unknown property", {"Bogus": 1}, "Bogus"),
]


@pytest.mark.parametrize(
    ("values", "fragment"),
    [(v, f) for _, v, f in INVALID_CASES],
    ids=[n for n, _, _ in INVALID_CASES],
)
def test_invalid_connectors_raise_one_line_validation_error(
    values: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ValidationError) as info:
        make(**values)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message
    assert message.strip() == message and message


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"smart_hosts": (SmartHost("relay.example.com"),)}, "DNSRoutingEnabled"),
        ({"dns_routing_enabled": False}, "SmartHosts"),
        ({"tls_auth_level": "EncryptionOnly"}, "RequireTLS"),
        ({"tls_domain": "contoso.com"}, "DomainValidation"),
        ({"require_tls": True, "ignore_starttls": True}, "IgnoreSTARTTLS"),
        (
            {
                "dns_routing_enabled": False,
                "smart_hosts": (SmartHost("relay.example.com"),),
                "smart_host_auth_mechanism": "BasicAuth",
            },
            "AuthenticationCredential",
        ),
        (
            {
                "dns_routing_enabled": False,
                "smart_hosts": (SmartHost("relay.example.com"),),
                "require_tls": True,
                "tls_auth_level": "DomainValidation",
            },
            "TlsDomain",
        ),
        ({"source_transport_servers": ()}, "SourceTransportServers"),
    ],
)
def test_validate_checks_cross_field_rules_on_values(changes: dict[str, Any], fragment: str) -> None:
    broken = dataclasses.replace(make(), **changes)
    with pytest.raises(ValidationError, match=fragment) as info:
        validate(broken)
    assert "\n" not in str(info.value)


# --- SmartHost.parse ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port", "is_ip", "shown"),
    [
        ("host", "host", None, False, "host"),
        ("relay.example.com", "relay.example.com", None, False, "relay.example.com"),
        ("Relay.Example.COM", "relay.example.com", None, False, "relay.example.com"),
        ("host:587", "host", 587, False, "host:587"),
        ("relay.example.com:25", "relay.example.com", 25, False, "relay.example.com:25"),
        ("[10.0.0.1]", "10.0.0.1", None, True, "[10.0.0.1]"),
        ("[10.0.0.1]:2525", "10.0.0.1", 2525, True, "[10.0.0.1]:2525"),
        ("10.0.0.1", "10.0.0.1", None, True, "[10.0.0.1]"),
        ("10.0.0.1:25", "10.0.0.1", 25, True, "[10.0.0.1]:25"),
        ("[::1]", "::1", None, True, "[::1]"),
        ("[2001:db8::25]:587", "2001:db8::25", 587, True, "[2001:db8::25]:587"),
        ("  host:587  ", "host", 587, False, "host:587"),
    ],
)
def test_smart_host_parse(text: str, host: str, port: int | None, is_ip: bool, shown: str) -> None:
    parsed = SmartHost.parse(text)
    assert (parsed.host, parsed.port, parsed.is_ip) == (host, port, is_ip)
    assert str(parsed) == shown
    assert SmartHost.parse(str(parsed)) == parsed


@pytest.mark.parametrize(
    "text",
    ["", "bad_host", "host:", "host:abc", "host:0", "host:65536", "[10.0.0.1]:0", "[10.0.0.1]:70000", "-host"],
)
def test_smart_host_parse_rejects_bad_syntax(text: str) -> None:
    with pytest.raises(ValidationError, match="SmartHosts") as info:
        SmartHost.parse(text)
    assert "\n" not in str(info.value)


# --- update_connector ---------------------------------------------------------------------


@pytest.mark.parametrize("key", ["Usage", "usage"])
def test_update_refuses_to_change_usage(key: str) -> None:
    c = make(Usage="Internet")
    with pytest.raises(ValidationError, match="Usage"):
        update_connector(c, {key: "Partner"})


def test_update_refuses_guid() -> None:
    c = make()
    with pytest.raises(ValidationError):
        update_connector(c, {"Guid": "00000000-0000-0000-0000-000000000000"})


def test_update_applies_changes_and_keeps_identity() -> None:
    c = make(Usage="Internet", Comment="before")
    updated = update_connector(
        c, {"DNSRoutingEnabled": "false", "SmartHosts": "[10.0.0.1]:2525,relay.example.com", "Port": 587}
    )
    assert updated.guid == c.guid
    assert updated.usage == "Internet"
    assert updated.comment == "before"
    assert updated.dns_routing_enabled is False
    assert updated.smart_hosts == (SmartHost("10.0.0.1", 2525, True), SmartHost("relay.example.com"))
    assert updated.port == 587
    assert c.dns_routing_enabled is True  # the original is untouched


@pytest.mark.parametrize("key", ["dns-routing-enabled", "dnsroutingenabled", "DNSRoutingEnabled"])
def test_update_accepts_cli_and_exchange_spellings(key: str) -> None:
    c = make(**SMART_HOST)
    assert update_connector(c, {key: True, "SmartHosts": []}).dns_routing_enabled is True


def test_update_validates_the_result() -> None:
    c = make()
    with pytest.raises(ValidationError, match="DNSRoutingEnabled"):
        update_connector(c, {"SmartHosts": "relay.example.com"})


# --- to_exchange / from_exchange ----------------------------------------------------------

FULL: dict[str, Any] = {
    "Name": "Partner Relay",
    "AddressSpaces": ["contoso.com;5", "*.fabrikam.com;10", "X400:o=MySite;p=MyOrg;a=adatum;c=us;3"],
    "Usage": "Partner",
    "DNSRoutingEnabled": False,
    "SmartHosts": ["[10.0.0.1]:2525", "relay.example.com", "[2001:db8::25]"],
    "Port": 587,
    "Fqdn": "mail.contoso.com",
    "MaxMessageSize": "20MB",
    "Enabled": False,
    "SmtpMaxMessagesPerConnection": 7,
    "ConnectionInactivityTimeOut": "00:05:00",
    "ProtocolLoggingLevel": "Verbose",
    "Comment": "partner link, via relay",
    "SourceTransportServers": ["EXCH01", "EXCH02"],
    "SenderDomains": ["contoso.com", "*.contoso.net", "ceo@fabrikam.com"],
    "RequireTLS": True,
    "TlsAuthLevel": "DomainValidation",
    "TlsDomain": "*.contoso.com",
    "TlsCertificateName": "<I>CN=Contoso CA<S>CN=mail.contoso.com",
    "SmartHostAuthMechanism": "BasicAuth",
    "AuthenticationCredential": "relayuser",
    "CloudServicesMailEnabled": True,
    "ForceHELO": True,
}

ROUND_TRIP_CASES: list[tuple[str, dict[str, Any]]] = [
    ("every property set", FULL),
    ("defaults", {}),
    ("internal unlimited", {"Usage": "Internal"}),
    ("dns with tls", {"RequireTLS": True, "TlsAuthLevel": "EncryptionOnly", "IgnoreSTARTTLS": False}),
    ("odd size", {"MaxMessageSize": 1_048_063}),
    ("big size", {"MaxMessageSize": 2_147_483_647}),
    ("day timeout", {"ConnectionInactivityTimeOut": "1.00:00:00"}),
    ("fractional timeout", {"ConnectionInactivityTimeOut": "1.5s"}),
    ("ignore starttls", {"IgnoreSTARTTLS": True}),
]


@pytest.mark.parametrize("values", [v for _, v in ROUND_TRIP_CASES], ids=[n for n, _ in ROUND_TRIP_CASES])
def test_to_exchange_from_exchange_round_trip(values: dict[str, Any]) -> None:
    original = make(**values)
    exported = json.loads(json.dumps(to_exchange(original)))  # survives JSON
    back = from_exchange(exported)
    for f in dataclasses.fields(SendConnector):
        assert getattr(back, f.name) == getattr(original, f.name), f.name
    assert back == original


def test_to_exchange_uses_exchange_names_and_forms() -> None:
    data = to_exchange(make(**FULL))
    assert set(data) == {p.exchange for p in PROPERTIES} | {"Identity", "Guid"}
    assert data["Identity"] == data["Name"] == "Partner Relay"
    assert data["AddressSpaces"] == [
        "SMTP:contoso.com;5",
        "SMTP:*.fabrikam.com;10",
        "X400:o=MySite;p=MyOrg;a=adatum;c=us;3",
    ]
    assert data["SmartHosts"] == ["[10.0.0.1]:2525", "relay.example.com", "[2001:db8::25]"]
    assert data["MaxMessageSize"] == "20 MB (20,971,520 bytes)"
    assert data["ConnectionInactivityTimeOut"] == "00:05:00"
    assert data["DNSRoutingEnabled"] is False
    assert data["SourceTransportServers"] == ["EXCH01", "EXCH02"]


def test_to_exchange_unlimited_size() -> None:
    assert to_exchange(make(Usage="Internal"))["MaxMessageSize"] == "Unlimited"


def test_from_exchange_takes_name_from_identity() -> None:
    data = to_exchange(make())
    del data["Name"]
    data["Identity"] = "Renamed"
    assert from_exchange(data).name == "Renamed"


def test_from_exchange_ignores_unknown_export_keys() -> None:
    original = make()
    data = to_exchange(original)
    data["WhenCreated"] = "2024-01-01"
    data["DistinguishedName"] = "CN=To Internet"
    assert from_exchange(data) == original


@pytest.mark.parametrize(
    ("key", "value"),
    [("Usage", "Bogus"), ("Port", 70000), ("SmartHosts", ["bad_host"]), ("AddressSpaces", ["*;0"])],
)
def test_from_exchange_rejects_bad_values(key: str, value: Any) -> None:
    data = to_exchange(make())
    data[key] = value
    with pytest.raises(ValidationError, match=key):
        from_exchange(data)


def test_from_exchange_validates() -> None:
    data = to_exchange(make())
    data["SmartHosts"] = ["relay.example.com"]
    with pytest.raises(ValidationError, match="DNSRoutingEnabled"):
        from_exchange(data)


# --- CLI option names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exchange", "option"),
    [
        ("Name", "--name"),
        ("AddressSpaces", "--address-spaces"),
        ("DNSRoutingEnabled", "--dns-routing-enabled"),
        ("SmartHosts", "--smart-hosts"),
        ("IgnoreSTARTTLS", "--ignore-starttls"),
        ("RequireTLS", "--require-tls"),
        ("TlsAuthLevel", "--tls-auth-level"),
        ("TlsDomain", "--tls-domain"),
        ("ConnectionInactivityTimeOut", "--connection-inactivity-timeout"),
        ("SmtpMaxMessagesPerConnection", "--smtp-max-messages-per-connection"),
        ("SourceTransportServers", "--source-transport-servers"),
        ("SmartHostAuthMechanism", "--smart-host-auth-mechanism"),
        ("MaxMessageSize", "--max-message-size"),
        ("ForceHELO", "--force-helo"),
        ("Fqdn", "--fqdn"),
        ("SenderDomains", "--sender-domains"),
    ],
)
def test_property_option_is_kebab_case(exchange: str, option: str) -> None:
    assert PROPERTY_BY_EXCHANGE[exchange.lower()].option == option


def test_every_option_is_unique_lowercase_kebab() -> None:
    options = [p.option for p in PROPERTIES]
    assert len(set(options)) == len(options)
    for option in options:
        assert option.startswith("--")
        assert option == option.lower()
        assert "--" not in option[2:]
        assert not option.endswith("-")


def test_only_usage_is_creation_only() -> None:
    assert [p.exchange for p in PROPERTIES if not p.settable] == ["Usage"]


# --- sender scopes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "sender", "expected"),
    [
        ("user@contoso.com", "user@contoso.com", 3),
        ("USER@Contoso.com", "user@CONTOSO.com", 3),
        ("user@contoso.com", "other@contoso.com", None),
        ("contoso.com", "user@contoso.com", 2),
        ("contoso.com", "user@Contoso.COM", 2),
        ("contoso.com", "user@sub.contoso.com", None),
        ("contoso.com", "user@fabrikam.com", None),
        ("*.contoso.com", "user@sub.contoso.com", 1),
        ("*.contoso.com", "user@contoso.com", 1),
        ("*.contoso.com", "user@fabrikam.com", None),
        ("contoso.com", "", None),  # the null sender matches no scope
        ("user@contoso.com", "", None),
        ("*.contoso.com", "", None),
    ],
)
def test_sender_scope_specificity(scope: str, sender: str, expected: int | None) -> None:
    assert sender_scope_specificity(scope, sender) == expected


@pytest.mark.parametrize(
    ("scopes", "sender", "expected"),
    [
        ([], "anyone@anywhere.example", 0),
        ([], "", 0),
        (["contoso.com"], "a@contoso.com", 2),
        (["contoso.com", "ceo@contoso.com"], "ceo@contoso.com", 3),
        (["*.contoso.com", "contoso.com"], "a@contoso.com", 2),
        (["contoso.com"], "a@fabrikam.com", None),
        (["contoso.com"], "", None),
    ],
)
def test_match_sender(scopes: list[str], sender: str, expected: int | None) -> None:
    values: dict[str, Any] = {"SenderDomains": scopes} if scopes else {}
    assert make(**values).match_sender(sender) == expected


@pytest.mark.parametrize(
    ("text", "stored"),
    [("Contoso.com", "contoso.com"), ("*.contoso.com", "*.contoso.com"), ("CEO@Contoso.com", "ceo@contoso.com")],
)
def test_sender_domains_are_normalised(text: str, stored: str) -> None:
    assert make(SenderDomains=text).sender_domains == (stored,)


@pytest.mark.parametrize("text", ["*", "*contoso.com", "@contoso.com", "a b@contoso.com", "user@bad_domain"])
def test_bad_sender_scopes_are_rejected(text: str) -> None:
    with pytest.raises(ValidationError, match="SenderDomains"):
        make(SenderDomains=text)


# --- matching helpers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spaces", "domain", "address", "cost"),
    [
        (["*;1", "contoso.com;50"], "contoso.com", "contoso.com", 50),
        (["*;1", "contoso.com;50"], "sub.contoso.com", "*", 1),
        (["*.contoso.com;10", "contoso.com;50"], "contoso.com", "contoso.com", 50),
        (["*.contoso.com;10", "contoso.com;50"], "sub.contoso.com", "*.contoso.com", 10),
    ],
)
def test_match_recipient_picks_most_specific_space(
    spaces: list[str], domain: str, address: str, cost: int
) -> None:
    matched = make(AddressSpaces=spaces).match_recipient(domain)
    assert matched is not None
    assert (matched[1].address, matched[1].cost) == (address, cost)


def test_match_recipient_none_when_nothing_matches() -> None:
    assert make(AddressSpaces="contoso.com").match_recipient("fabrikam.com") is None


@pytest.mark.parametrize(
    ("servers", "local", "expected"),
    [(["EXCH01"], "EXCH01", True), (["EXCH01"], "exch01", True), (["EXCH02", "EXCH03"], "EXCH01", False)],
)
def test_is_source(servers: list[str], local: str, expected: bool) -> None:
    assert make(SourceTransportServers=servers).is_source(local) is expected


@pytest.mark.parametrize(
    ("values", "delivery_type"),
    [({}, "DnsConnectorDelivery"), (SMART_HOST, "SmartHostConnectorDelivery")],
)
def test_delivery_type(values: dict[str, Any], delivery_type: str) -> None:
    assert make(**values).delivery_type == delivery_type
