"""mailhop.routing.router: Exchange's connector selection plus sender-based routing."""

from __future__ import annotations

from typing import Any

import pytest

from mailhop.model.connector import SendConnector, new_connector
from mailhop.outcome import ROUTING_SIZE_LIMIT
from mailhop.routing.router import Router, recipient_domain

LOCAL = "EXCH01"
MB = 1024 * 1024


def conn(name: str, spaces: str | list[str], **values: Any) -> SendConnector:
    return new_connector({"Name": name, "AddressSpaces": spaces, **values}, LOCAL)


def smart(name: str, spaces: str | list[str], hosts: str | list[str], **values: Any) -> SendConnector:
    return conn(name, spaces, DNSRoutingEnabled=False, SmartHosts=hosts, **values)


def chosen(connectors: list[SendConnector], recipient: str, sender: str = "", size: int = 0) -> str | None:
    route = Router(connectors, LOCAL).route(recipient, sender=sender, size=size)
    return route.connector.name if route.connector else None


# --- recipient_domain ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "domain"),
    [
        ("julia@marketing.contoso.com", "marketing.contoso.com"),
        ("Julia@Contoso.COM", "contoso.com"),
        ("julia@contoso.com.", "contoso.com"),
        ('"a@b"@contoso.com', "contoso.com"),
    ],
)
def test_recipient_domain(address: str, domain: str) -> None:
    assert recipient_domain(address) == domain


# --- address space specificity ------------------------------------------------------------

SPECIFICITY = [
    conn("A Star", "*"),
    conn("B Wild", "*.contoso.com"),
    conn("C Exact Sub", "marketing.contoso.com"),
    conn("D Exact", "contoso.com"),
    conn("E Wild Com", "*.com"),
]


@pytest.mark.parametrize(
    ("recipient", "expected"),
    [
        ("julia@marketing.contoso.com", "C Exact Sub"),
        ("julia@MARKETING.Contoso.com", "C Exact Sub"),
        ("julia@sales.contoso.com", "B Wild"),  # contoso.com never matches subdomains
        ("julia@a.b.contoso.com", "B Wild"),
        ("julia@contoso.com", "D Exact"),  # exact beats *.contoso.com
        ("julia@fabrikam.com", "E Wild Com"),  # *.com beats *
        ("julia@fabrikam.net", "A Star"),
        ("julia@xcontoso.com", "E Wild Com"),
    ],
)
def test_most_specific_address_space_wins(recipient: str, expected: str) -> None:
    assert chosen(SPECIFICITY, recipient) == expected


@pytest.mark.parametrize(
    ("connectors", "recipient", "expected"),
    [
        # specificity beats cost
        ([conn("A", "*;1"), conn("B", "contoso.com;100")], "x@contoso.com", "B"),
        ([conn("A", "*.contoso.com;1"), conn("B", "contoso.com;100")], "x@contoso.com", "B"),
        # the connector's best space counts
        ([conn("A", ["*;1", "contoso.com;50"]), conn("B", "*.contoso.com;1")], "x@contoso.com", "A"),
        ([conn("A", ["*;1", "contoso.com;50"]), conn("B", "*.contoso.com;1")], "x@sub.contoso.com", "B"),
    ],
)
def test_specificity_before_cost(
    connectors: list[SendConnector], recipient: str, expected: str
) -> None:
    assert chosen(connectors, recipient) == expected


# --- tie-breakers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("connectors", "expected"),
    [
        # lowest cost
        ([conn("A", "*;5"), conn("B", "*;2")], "B"),
        ([conn("A", "*;2"), conn("B", "*;5")], "A"),
        ([conn("Z", "contoso.com;1"), conn("A", "contoso.com;3")], "Z"),
        # equal cost: a connector this server is a source of
        ([conn("A", "*", SourceTransportServers="EXCH02"), conn("B", "*")], "B"),
        ([conn("A", "*", SourceTransportServers="EXCH02,EXCH01"), conn("B", "*", SourceTransportServers="EXCH03")], "A"),
        # cost beats the local-source preference
        ([conn("A", "*;1", SourceTransportServers="EXCH02"), conn("B", "*;2")], "A"),
        # all equal: lowest name, case-insensitively; no load balancing
        ([conn("Beta", "*"), conn("alpha", "*")], "alpha"),
        ([conn("alpha", "*"), conn("Beta", "*")], "alpha"),
        ([conn("Outbound 2", "*"), conn("Outbound 1", "*")], "Outbound 1"),
    ],
)
def test_tie_breakers(connectors: list[SendConnector], expected: str) -> None:
    assert chosen(connectors, "x@contoso.com") == expected


def test_same_space_same_cost_never_load_balances() -> None:
    router = Router([conn("B", "*"), conn("A", "*")], LOCAL)
    picks = {router.route(f"user{i}@domain{i}.example").connector.name for i in range(20)}  # type: ignore[union-attr]
    assert picks == {"A"}


def test_local_server_name_matches_case_insensitively() -> None:
    connectors = [conn("A", "*", SourceTransportServers="EXCH02"), conn("B", "*", SourceTransportServers="exch01")]
    assert chosen(connectors, "x@contoso.com") == "B"


@pytest.mark.parametrize(
    ("connectors", "expected"),
    [
        ([conn("A", "contoso.com", Enabled=False), conn("B", "*")], "B"),
        ([conn("A", "*", Enabled=False), conn("B", "*;50")], "B"),
        ([conn("A", "*", Enabled=False)], None),
    ],
)
def test_disabled_connectors_are_ignored(connectors: list[SendConnector], expected: str | None) -> None:
    assert chosen(connectors, "x@contoso.com") == expected


def test_non_smtp_address_spaces_never_match() -> None:
    x400 = smart("X400", "X400:o=MySite;p=MyOrg;a=adatum;c=us;1", "relay.example.com")
    route = Router([x400], LOCAL).route("x@contoso.com")
    assert route.delivery_type == "Unreachable"
    assert route.connector is None


# --- sender scopes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("connectors", "sender", "expected"),
    [
        # scoped over unscoped at equal specificity, whatever the cost or name
        ([conn("A Internet", "*"), conn("B Contoso", "*;10", SenderDomains="contoso.com")], "u@contoso.com", "B Contoso"),
        ([conn("A Internet", "*"), conn("B Contoso", "*;10", SenderDomains="contoso.com")], "u@fabrikam.com", "A Internet"),
        # a full address beats a domain
        (
            [conn("A Domain", "*", SenderDomains="contoso.com"), conn("B CEO", "*", SenderDomains="ceo@contoso.com")],
            "ceo@contoso.com",
            "B CEO",
        ),
        (
            [conn("A Domain", "*", SenderDomains="contoso.com"), conn("B CEO", "*", SenderDomains="ceo@contoso.com")],
            "cfo@contoso.com",
            "A Domain",
        ),
        # an exact domain beats *.domain
        (
            [conn("A Wild", "*", SenderDomains="*.contoso.com"), conn("B Exact", "*", SenderDomains="contoso.com")],
            "u@contoso.com",
            "B Exact",
        ),
        (
            [conn("A Wild", "*", SenderDomains="*.contoso.com"), conn("B Exact", "*", SenderDomains="contoso.com")],
            "u@eu.contoso.com",
            "A Wild",
        ),
        # the address space still comes first
        ([conn("A Gmail", "gmail.com"), conn("B Contoso", "*", SenderDomains="contoso.com")], "u@contoso.com", "A Gmail"),
        # the null sender (NDRs) never uses a scoped connector
        ([conn("A Internet", "*;50"), conn("B Contoso", "*", SenderDomains="contoso.com")], "", "A Internet"),
        ([conn("B Contoso", "*", SenderDomains="contoso.com")], "", None),
        # a scoped connector is not used for other senders even with no alternative
        ([conn("B Contoso", "*", SenderDomains="contoso.com")], "u@fabrikam.com", None),
        # scopes are indexed by sender: case, several scopes per connector, deep sub-domains
        ([conn("A Internet", "*"), conn("B Wild", "*", SenderDomains="*.contoso.com")], "U@A.EU.Contoso.COM", "B Wild"),
        ([conn("A Internet", "*"), conn("B Two", "*", SenderDomains="contoso.com,ceo@fabrikam.com")],
         "CEO@fabrikam.com", "B Two"),
        ([conn("A Internet", "*"), conn("B Two", "*", SenderDomains="contoso.com,ceo@fabrikam.com")],
         "cfo@fabrikam.com", "A Internet"),
        ([conn("A Internet", "*"), *[conn(f"T{i}", "*", SenderDomains=f"tenant{i}.test") for i in range(50)]],
         "u@tenant7.test", "T7"),
    ],
)
def test_sender_scoped_routing(connectors: list[SendConnector], sender: str, expected: str | None) -> None:
    assert chosen(connectors, "x@gmail.com", sender=sender) == expected


def test_two_domains_leave_through_their_own_smart_hosts() -> None:
    """Reference section 8's gap: mailboxes of contoso.com and fabrikam.com use different relays."""
    connectors = [
        smart("Contoso Out", "*", "[10.0.0.1]", SenderDomains="contoso.com"),
        smart("Fabrikam Out", "*", "relay.fabrikam.com:587", SenderDomains="fabrikam.com"),
    ]
    router = Router(connectors, LOCAL)
    expectations = [
        ("alice@contoso.com", "Contoso Out", ["[10.0.0.1]"]),
        ("bob@contoso.com", "Contoso Out", ["[10.0.0.1]"]),
        ("carol@fabrikam.com", "Fabrikam Out", ["relay.fabrikam.com:587"]),
        ("dave@Fabrikam.com", "Fabrikam Out", ["relay.fabrikam.com:587"]),
    ]
    for recipient in ("someone@gmail.com", "partner@example.org"):
        for sender, name, hops in expectations:
            data = router.route(recipient, sender=sender).to_json()
            assert data["Connector"] == name, (sender, recipient)
            assert data["DeliveryType"] == "SmartHostConnectorDelivery"
            assert data["NextHops"] == hops
    other = router.route("someone@gmail.com", sender="eve@tailspintoys.com")
    assert other.delivery_type == "Unreachable"


# --- size filter --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, "A Small Specific"),
        (MB, "A Small Specific"),  # equal to the limit still fits
        (MB + 1, "B Big"),  # too big for the specific one: the bigger less-specific one
        (50 * MB, "B Big"),
        (50 * MB + 1, "C Unlimited"),
        (3000 * MB, "C Unlimited"),
    ],
)
def test_size_filter_falls_back_to_a_bigger_connector(size: int, expected: str) -> None:
    connectors = [
        conn("A Small Specific", "contoso.com", MaxMessageSize="1MB"),
        conn("B Big", "*.contoso.com", MaxMessageSize="50MB"),
        conn("C Unlimited", "*", Usage="Internal"),
    ]
    assert chosen(connectors, "x@contoso.com", size=size) == expected


def test_message_larger_than_every_match_fails_with_size_limit() -> None:
    connectors = [
        conn("A", "contoso.com", MaxMessageSize="1MB"),
        conn("B", "*", MaxMessageSize="2MB"),
        conn("C Other", "fabrikam.com", Usage="Internal"),  # unlimited but does not match
    ]
    route = Router(connectors, LOCAL).route("x@contoso.com", sender="u@contoso.com", size=3 * MB)
    assert route.delivery_type == "Unreachable"
    assert route.connector is None
    assert route.next_hops == ()
    assert route.failure == ROUTING_SIZE_LIMIT
    assert str(route.failure) == "550 5.3.4 ROUTING.SizeLimit; message size exceeds fixed maximum size for route"
    data = route.to_json()
    assert data["Failure"] == str(ROUTING_SIZE_LIMIT)
    assert "ROUTING.SizeLimit" in data["Reason"]
    assert data["Connector"] is None


def test_size_is_ignored_for_unmatched_connectors_when_routing_fails() -> None:
    route = Router([conn("A", "fabrikam.com")], LOCAL).route("x@contoso.com", size=100 * MB)
    assert route.failure is None
    assert route.delivery_type == "Unreachable"


# --- route results ------------------------------------------------------------------------


def test_no_match_is_unreachable() -> None:
    route = Router([conn("A", "fabrikam.com"), conn("B", "contoso.com")], LOCAL).route("x@sub.contoso.com")
    assert route.delivery_type == "Unreachable"
    assert route.connector is None
    assert route.failure is None
    assert route.next_hops == ()
    data = route.to_json()
    assert data["Connector"] is None
    assert data["DeliveryType"] == "Unreachable"
    assert data["NextHops"] == []
    assert data["Reason"] == "A matching connector cannot be found to route the external recipient"


def test_no_connectors_at_all_is_unreachable() -> None:
    assert Router([], LOCAL).route("x@contoso.com").delivery_type == "Unreachable"


def test_dns_connector_delivery_goes_to_the_recipient_domain() -> None:
    route = Router([conn("Internet", "*")], LOCAL).route("Julia@Marketing.Contoso.com")
    assert route.delivery_type == "DnsConnectorDelivery"
    assert route.next_hop_domain == "marketing.contoso.com"
    assert route.next_hops == ("marketing.contoso.com",)
    assert route.connector is not None and route.connector.name == "Internet"


def test_smart_host_connector_delivery_lists_the_smart_hosts() -> None:
    connector = smart("Relay", "*", ["[10.10.10.100]", "relay.tailspintoys.com", "relay2.tailspintoys.com:587"])
    route = Router([connector], LOCAL).route("x@contoso.com")
    assert route.delivery_type == "SmartHostConnectorDelivery"
    assert route.next_hops == ("[10.10.10.100]", "relay.tailspintoys.com", "relay2.tailspintoys.com:587")
    assert route.next_hop_domain == "[10.10.10.100],relay.tailspintoys.com,relay2.tailspintoys.com:587"
    assert route.connector_guid == connector.guid


@pytest.mark.parametrize(
    ("values", "next_hop_type"),
    [({}, "dns"), ({"DNSRoutingEnabled": False, "SmartHosts": "relay.example.com"}, "smart host")],
)
def test_relay_to_source_servers_when_local_server_is_not_a_source(
    values: dict[str, Any], next_hop_type: str
) -> None:
    connector = conn("Remote Out", "*", SourceTransportServers=["EXCH02", "EXCH03"], **values)
    route = Router([connector], LOCAL).route("x@contoso.com")
    assert route.delivery_type == "SmtpRelayToConnectorSourceServers", next_hop_type
    assert route.next_hops == ("EXCH02", "EXCH03")
    assert route.next_hop_domain == "Remote Out"
    assert route.connector is connector
    data = route.to_json()
    assert data["Connector"] == "Remote Out"
    assert data["NextHops"] == ["EXCH02", "EXCH03"]


def test_route_json_keys_and_values() -> None:
    route = Router([conn("Internet", "*"), conn("Contoso", "*.contoso.com")], LOCAL).route("x@sub.contoso.com")
    data = route.to_json()
    assert {"Connector", "DeliveryType", "NextHops", "Reason"} <= set(data)
    assert data["Connector"] == "Contoso"
    assert data["DeliveryType"] == "DnsConnectorDelivery"
    assert data["NextHops"] == ["sub.contoso.com"]
    assert isinstance(data["Reason"], str)
    assert "Contoso" in data["Reason"]
    assert "*.contoso.com" in data["Reason"]
    assert "Failure" not in data


@pytest.mark.parametrize(
    ("connectors", "why"),
    [
        ([conn("A", "*"), conn("B", "contoso.com")], "more specific address space"),
        ([conn("A", "*"), conn("B", "*", SenderDomains="contoso.com")], "sender scope"),
        ([conn("A", "*;5"), conn("B", "*;1")], "lower cost"),
        ([conn("A", "*", SourceTransportServers="EXCH09"), conn("B", "*")], "local source server"),
        ([conn("B", "*"), conn("A", "*")], "name order"),
    ],
)
def test_reason_explains_the_deciding_rule(connectors: list[SendConnector], why: str) -> None:
    route = Router(connectors, LOCAL).route("x@contoso.com", sender="u@contoso.com")
    winner = "A" if why == "name order" else "B"
    assert route.connector is not None and route.connector.name == winner
    assert why in route.reason


def test_router_is_independent_of_input_order() -> None:
    connectors = [conn("C", "*"), conn("A", "*.contoso.com;3"), conn("B", "*.contoso.com;2")]
    for ordering in (connectors, list(reversed(connectors)), connectors[1:] + connectors[:1]):
        assert chosen(ordering, "x@sub.contoso.com") == "B"
