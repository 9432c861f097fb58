"""The Resolver contract, run against the fake and against DnsResolver on a real DNS server.

One zone, described once below, is given to ``FakeResolver`` and to a dnsmasq on
127.0.0.1 (tests/support/dns.py) that ``DnsResolver`` asks.  Every name is under
``test``, which that dnsmasq serves alone: names it was not given are NXDOMAIN,
and ``broken.test`` is forwarded to a dead upstream, so its queries time out.
Record order within an answer is not part of the contract (dnsmasq reorders), so
answers are compared sorted; A records still come before AAAA records.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import pytest

from mailhop.delivery.dns import DnsError, DnsResolver, MxRecord, Resolver
from mailhop.testing.resolver import FakeResolver
from tests.support.dns import DnsServer

# --- the zone ----------------------------------------------------------------------------------

MX: dict[str, list[tuple[int, str]]] = {
    "fabrikam.test": [(20, "mx2.fabrikam.test"), (10, "mx1.fabrikam.test"), (10, "mx3.fabrikam.test")],
    "mxonly.test": [(10, "mx1.fabrikam.test")],  # a name with an MX and no address
}
ADDRESSES: dict[str, list[str]] = {
    "mx1.fabrikam.test": ["127.0.0.2"],
    "mx2.fabrikam.test": ["127.0.0.3"],
    "mx3.fabrikam.test": ["127.0.0.4"],
    "implicit.test": ["127.0.0.5"],  # A, no MX: its own implicit MX
    "dual.test": ["127.0.0.6", "127.0.0.7", "2001:db8::6"],
    "v6only.test": ["2001:db8::8"],
    "host.sub.deep.test": ["127.0.0.9"],  # deep.test and sub.deep.test exist without records
}
LONG_KEY = "v=DKIM1; k=rsa; p=" + "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" * 9  # > 255 bytes: several strings
TXT: dict[str, list[str]] = {
    "fabrikam.test": ["v=spf1 ip4:127.0.0.2 -all", "google-site-verification=abc"],
    "selector1._domainkey.fabrikam.test": [LONG_KEY],
    "_dmarc.fabrikam.test": ["v=DMARC1; p=reject"],
}
PTR: dict[str, list[str]] = {"127.0.0.2": ["mx1.fabrikam.test"], "127.0.0.6": ["dual.test"]}
NULL_MX = ["nomail.test"]
NXDOMAIN = ["gone.test"]  # not given to dnsmasq: every undefined name under .test is NXDOMAIN
FAILING = ["broken.test"]

TIMEOUT_MX = "DNS query for broken.test MX failed with error ErrorTimeout"


@dataclass
class Backend:
    name: str
    resolver: Resolver  # patient: answers come at once, the limits only guard against a hang
    hasty: Resolver  # a short lifetime, for the zone whose server never answers
    queries: Callable[[], list[tuple[str, str]]]  # (type, name) of the queries made in this test


@pytest.fixture(scope="module")
def dns_server() -> Iterator[DnsServer]:
    server = DnsServer(mx=MX, txt=TXT, ptr=PTR, null_mx=NULL_MX, servfail=FAILING)
    # DnsServer's ``a`` takes one address a name; dnsmasq takes one --host-record per address.
    server.record_args += [f"--host-record={host},{ip}" for host, ips in ADDRESSES.items() for ip in ips]
    with server:
        yield server


@pytest.fixture(params=["fake", "dnsmasq"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "fake":
        fake = FakeResolver(mx=MX, addresses=ADDRESSES, txt=TXT, ptr=PTR, null_mx=NULL_MX, nxdomain=NXDOMAIN,
                            failing=FAILING)
        return Backend("fake", fake, fake, lambda: list(fake.queries))
    server: DnsServer = request.getfixturevalue("dns_server")
    before = len(server.queries())
    return Backend(
        "dnsmasq",
        DnsResolver([server.nameserver], timeout=2.0, lifetime=10.0),
        # The server never answers for broken.test, so this times out whatever the machine's load.
        DnsResolver([server.nameserver], timeout=0.1, lifetime=0.2),
        lambda: server.queries()[before:],
    )


async def dns_error(call: Awaitable[object]) -> DnsError:
    with pytest.raises(DnsError) as info:
        await call
    return info.value


def by_preference(records: list[MxRecord]) -> list[MxRecord]:
    return sorted(records, key=lambda r: (r.preference, r.host))


def in_family_order(ips: list[str]) -> list[str]:
    """The addresses as the contract promises them: all IPv4 (sorted), then all IPv6 (sorted)."""
    v4 = sorted(ip for ip in ips if ":" not in ip)
    v6 = sorted(ip for ip in ips if ":" in ip)
    assert ips[: len(v4)] == [ip for ip in ips if ":" not in ip], f"IPv4 after IPv6 in {ips}"
    return v4 + v6


# --- mx ----------------------------------------------------------------------------------------

async def test_mx_records_of_a_domain(backend: Backend) -> None:
    records = await backend.resolver.mx("fabrikam.test")
    assert by_preference(records) == [MxRecord(10, "mx1.fabrikam.test"), MxRecord(10, "mx3.fabrikam.test"),
                                      MxRecord(20, "mx2.fabrikam.test")]


async def test_mx_lookup_ignores_case_and_trailing_dot(backend: Backend) -> None:
    assert by_preference(await backend.resolver.mx("FabriKam.TEST.")) == by_preference(
        await backend.resolver.mx("fabrikam.test"))


async def test_domain_with_an_address_but_no_mx_has_no_mx_records(backend: Backend) -> None:
    assert await backend.resolver.mx("implicit.test") == []


async def test_empty_non_terminal_has_no_mx_records_and_is_not_nxdomain(backend: Backend) -> None:
    assert await backend.resolver.mx("deep.test") == []
    assert await backend.resolver.mx("sub.deep.test") == []


async def test_null_mx_is_preference_0_and_the_root_name(backend: Backend) -> None:
    # DnsResolver gives the root name as "." (dnspython's to_text(omit_final_dot=True) of it).
    assert await backend.resolver.mx("nomail.test") == [MxRecord(0, ".")]


async def test_mx_of_a_nonexistent_domain_is_a_permanent_error(backend: Backend) -> None:
    error = await dns_error(backend.resolver.mx("gone.test"))
    assert error.permanent is True
    assert str(error) == "gone.test: nonexistent domain (NXDOMAIN)"


async def test_mx_of_a_name_under_a_nonexistent_one_is_nxdomain_too(backend: Backend) -> None:
    error = await dns_error(backend.resolver.mx("mail.gone.test"))
    assert (error.permanent, str(error)) == (True, "mail.gone.test: nonexistent domain (NXDOMAIN)")


async def test_mx_timeout_is_a_temporary_error(backend: Backend) -> None:
    error = await dns_error(backend.hasty.mx("broken.test"))
    assert error.permanent is False
    assert str(error) == TIMEOUT_MX


# --- addresses ---------------------------------------------------------------------------------

async def test_addresses_of_a_host_with_one_a_record(backend: Backend) -> None:
    assert await backend.resolver.addresses("mx1.fabrikam.test") == ["127.0.0.2"]


async def test_addresses_of_a_host_with_a_and_aaaa_records_ipv4_first(backend: Backend) -> None:
    ips = await backend.resolver.addresses("dual.test")
    assert in_family_order(ips) == ["127.0.0.6", "127.0.0.7", "2001:db8::6"]


async def test_addresses_of_a_host_with_only_aaaa(backend: Backend) -> None:
    assert await backend.resolver.addresses("v6only.test") == ["2001:db8::8"]


async def test_addresses_lookup_ignores_case_and_trailing_dot(backend: Backend) -> None:
    assert await backend.resolver.addresses("MX1.Fabrikam.Test.") == ["127.0.0.2"]


async def test_host_without_a_or_aaaa_is_a_permanent_error(backend: Backend) -> None:
    for host in ("mxonly.test", "deep.test"):  # a name with only an MX; an empty non-terminal
        error = await dns_error(backend.resolver.addresses(host))
        assert (error.permanent, str(error)) == (True, f"{host} has no A or AAAA record")


async def test_addresses_of_a_nonexistent_host_is_a_permanent_error(backend: Backend) -> None:
    error = await dns_error(backend.resolver.addresses("gone.test"))
    assert error.permanent is True
    assert str(error) == "gone.test: nonexistent domain (NXDOMAIN)"


async def test_addresses_timeout_is_a_temporary_error(backend: Backend) -> None:
    error = await dns_error(backend.hasty.addresses("mx.broken.test"))
    assert error.permanent is False
    assert str(error) == "DNS query for mx.broken.test A failed with error ErrorTimeout"


@pytest.mark.parametrize("ip", ["127.0.0.1", "192.0.2.25", "::1", "2001:db8::25"])
async def test_ip_literal_is_its_own_address_without_a_query(backend: Backend, ip: str) -> None:
    assert await backend.resolver.addresses(ip) == [ip]
    assert backend.queries() == []


# --- txt and ptr -------------------------------------------------------------------------------

async def test_txt_records_of_a_name(backend: Backend) -> None:
    assert sorted(await backend.resolver.txt("fabrikam.test")) == sorted(TXT["fabrikam.test"])
    assert await backend.resolver.txt("_DMARC.fabrikam.test.") == ["v=DMARC1; p=reject"]


async def test_txt_record_of_several_strings_is_joined_without_a_separator(backend: Backend) -> None:
    assert await backend.resolver.txt("selector1._domainkey.fabrikam.test") == [LONG_KEY]


async def test_txt_of_a_name_without_txt_records_is_empty_and_of_a_missing_name_nxdomain(backend: Backend) -> None:
    assert await backend.resolver.txt("mx1.fabrikam.test") == []
    assert await backend.resolver.txt("_domainkey.fabrikam.test") == []  # an empty non-terminal
    error = await dns_error(backend.resolver.txt("selector2._domainkey.fabrikam.test"))
    assert (error.permanent, str(error)) == (True, "selector2._domainkey.fabrikam.test: nonexistent domain (NXDOMAIN)")


async def test_txt_timeout_is_a_temporary_error(backend: Backend) -> None:
    error = await dns_error(backend.hasty.txt("_dmarc.broken.test"))
    assert (error.permanent, str(error)) == (False, "DNS query for _dmarc.broken.test TXT failed with error ErrorTimeout")


async def test_ptr_names_of_an_address(backend: Backend) -> None:
    assert await backend.resolver.ptr("127.0.0.2") == ["mx1.fabrikam.test"]
    assert backend.queries() == [("PTR", "2.0.0.127.in-addr.arpa")]


async def test_ptr_of_an_address_without_a_reverse_name_is_nxdomain(backend: Backend) -> None:
    error = await dns_error(backend.resolver.ptr("127.0.0.99"))
    assert (error.permanent, str(error)) == (True, "99.0.0.127.in-addr.arpa: nonexistent domain (NXDOMAIN)")


# --- queries -----------------------------------------------------------------------------------

async def test_queries_are_one_mx_and_an_a_and_an_aaaa_per_host(backend: Backend) -> None:
    await backend.resolver.mx("fabrikam.test")
    await backend.resolver.addresses("mx1.fabrikam.test")
    await dns_error(backend.resolver.addresses("gone.test"))
    assert backend.queries() == [("MX", "fabrikam.test"), ("A", "mx1.fabrikam.test"),
                                 ("AAAA", "mx1.fabrikam.test"), ("A", "gone.test"), ("AAAA", "gone.test")]


# --- the fake alone: how it reads its data -----------------------------------------------------

async def test_fake_everything_not_given_is_nxdomain() -> None:
    error = await dns_error(FakeResolver().mx("anything.example"))
    assert (error.permanent, str(error)) == (True, "anything.example: nonexistent domain (NXDOMAIN)")


async def test_fake_takes_mx_records_one_address_as_a_string_and_empty_lists() -> None:
    fake = FakeResolver(mx={"a.test": [MxRecord(5, "mx.a.test."), (0, "")], "b.test": []},
                        addresses={"mx.a.test": "192.0.2.1", "empty.test": []})
    assert await fake.mx("a.test") == [MxRecord(5, "mx.a.test"), MxRecord(0, ".")]
    assert await fake.mx("b.test") == []
    assert await fake.addresses("mx.a.test") == ["192.0.2.1"]
    error = await dns_error(fake.addresses("empty.test"))
    assert (error.permanent, str(error)) == (True, "empty.test has no A or AAAA record")


async def test_fake_failing_zone_wins_over_its_records_but_not_over_ip_literals() -> None:
    fake = FakeResolver(mx={"down.test": [(10, "mx.down.test")]}, addresses={"mx.down.test": "192.0.2.1"},
                        failing={"down.test"})
    error = await dns_error(fake.mx("DOWN.test"))
    assert (error.permanent, str(error)) == (False, "DNS query for DOWN.test MX failed with error ErrorTimeout")
    assert (await dns_error(fake.addresses("mx.down.test"))).permanent is False
    assert await fake.addresses("192.0.2.1") == ["192.0.2.1"]


def test_fake_rejects_contradictory_or_malformed_data() -> None:
    with pytest.raises(ValueError, match="NXDOMAIN"):
        FakeResolver(addresses={"mx.gone.test": ["192.0.2.1"]}, nxdomain={"gone.test"})
    with pytest.raises(ValueError):
        FakeResolver(addresses={"host.test": ["not-an-ip"]})
