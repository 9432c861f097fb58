"""mailhop.model.address_space: Exchange's ``[type:]space[;cost]`` and its matching rules."""

from __future__ import annotations

import pytest

from mailhop.errors import ValidationError
from mailhop.model.address_space import (
    AddressSpace,
    domain_specificity,
    is_valid_domain,
    parse_address_spaces,
    split_list,
)

# --- AddressSpace.parse -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "address", "cost", "kind"),
    [
        ("*", "*", 1, "SMTP"),
        ("contoso.com", "contoso.com", 1, "SMTP"),
        ("*.contoso.com", "*.contoso.com", 1, "SMTP"),
        ("*.com", "*.com", 1, "SMTP"),
        ("smtp:*;1", "*", 1, "SMTP"),
        ("SMTP:*", "*", 1, "SMTP"),
        ("SMTP:contoso.com;5", "contoso.com", 5, "SMTP"),
        ("contoso.com;2", "contoso.com", 2, "SMTP"),
        ("smtp:*.contoso.com;100", "*.contoso.com", 100, "SMTP"),
        ('"SMTP:contoso.com;1"', "contoso.com", 1, "SMTP"),
        ("'contoso.com;3'", "contoso.com", 3, "SMTP"),
        ("  contoso.com ; 4 ", "contoso.com", 4, "SMTP"),
        ("Contoso.COM", "contoso.com", 1, "SMTP"),
        ("*.Contoso.Com", "*.contoso.com", 1, "SMTP"),
        ("sub.contoso.com", "sub.contoso.com", 1, "SMTP"),
        ("X400:o=MySite;p=MyOrg;a=adatum;c=us;1", "o=MySite;p=MyOrg;a=adatum;c=us", 1, "X400"),
        ("X400:o=MySite;p=MyOrg;a=adatum;c=us;42", "o=MySite;p=MyOrg;a=adatum;c=us", 42, "X400"),
        ("Notes:MyDomain", "MyDomain", 1, "Notes"),
        ("Notes:MyDomain;7", "MyDomain", 7, "Notes"),
    ],
)
def test_parse_valid_address_spaces(text: str, address: str, cost: int, kind: str) -> None:
    space = AddressSpace.parse(text)
    assert (space.address, space.cost, space.type) == (address, cost, kind)


@pytest.mark.parametrize(
    "text",
    ["contoso.com", "SMTP:contoso.com", "contoso.com;1", "SMTP:contoso.com;1", '"SMTP:contoso.com;1"'],
)
def test_exchange_equivalent_spellings_are_equal(text: str) -> None:
    # Reference 1.3: "SMTP:contoso.com;1" = "contoso.com;1" = "SMTP:contoso.com" = contoso.com
    assert AddressSpace.parse(text) == AddressSpace("contoso.com", 1, "SMTP")


def test_star_equals_smtp_star_cost_one() -> None:
    assert AddressSpace.parse("*") == AddressSpace.parse("SMTP:*;1")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("*;0", "1-100"),
        ("*;101", "1-100"),
        ("*;-1", "1-100"),
        ("contoso.com;1000", "1-100"),
        ("SMTP:contoso.com;0", "1-100"),
        ("X400:o=MySite;p=MyOrg;a=adatum;c=us;0", "1-100"),
        ("X400:o=MySite;p=MyOrg;a=adatum;c=us;101", "1-100"),
        ("*;abc", "cost"),
        ("*;", "cost"),
        ("*;1;2", "cost"),
    ],
)
def test_cost_outside_1_to_100_or_not_a_number_is_rejected(text: str, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        AddressSpace.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "*contoso.com",
        "SMTP:*contoso.com;1",
        "*.*.contoso.com",
        "contoso.*",
        "con*toso.com",
        "*.",
        "**",
    ],
)
def test_misplaced_wildcards_are_rejected(text: str) -> None:
    with pytest.raises(ValidationError, match="wildcard"):
        AddressSpace.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "smtp:",
        "con_toso.com",
        "-contoso.com",
        "contoso-.com",
        "contoso.com.",
        "a..b",
        "contoso.com:25",
        "user@contoso.com",
        "x" * 64 + ".com",
    ],
)
def test_invalid_smtp_domains_are_rejected(text: str) -> None:
    with pytest.raises(ValidationError):
        AddressSpace.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "X400:o=MySite;p=MyOrg;a=adatum;c=us",  # contains ';' but no trailing cost
        "X400:o=MySite;p=MyOrg;abc",
    ],
)
def test_non_smtp_space_containing_semicolon_needs_explicit_cost(text: str) -> None:
    with pytest.raises(ValidationError, match="explicit cost"):
        AddressSpace.parse(text)


def test_non_smtp_space_needs_an_address() -> None:
    with pytest.raises(ValidationError):
        AddressSpace.parse("X400:;1")


@pytest.mark.parametrize(
    "text",
    ["*;0", "*contoso.com", "X400:o=MySite;p=MyOrg;a=adatum;c=us", "", "con_toso.com"],
)
def test_errors_are_one_line_and_name_the_property(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        AddressSpace.parse(text)
    message = str(info.value)
    assert message.startswith("AddressSpaces:")
    assert "\n" not in message


# --- str() --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("*", "smtp:*;1"),
        ("SMTP:*;1", "smtp:*;1"),
        ("contoso.com", "smtp:contoso.com;1"),
        ("SMTP:Contoso.com;5", "smtp:contoso.com;5"),
        ("*.contoso.com;10", "smtp:*.contoso.com;10"),
        ("X400:o=MySite;p=MyOrg;a=adatum;c=us;1", "X400:o=MySite;p=MyOrg;a=adatum;c=us;1"),
    ],
)
def test_str_form(text: str, shown: str) -> None:
    assert str(AddressSpace.parse(text)) == shown


@pytest.mark.parametrize(
    "text", ["*", "contoso.com;7", "*.contoso.com;100", "X400:o=MySite;p=MyOrg;a=adatum;c=us;3"]
)
def test_str_parses_back(text: str) -> None:
    space = AddressSpace.parse(text)
    assert AddressSpace.parse(str(space)) == space


# --- domain_specificity and match ---------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "domain", "expected"),
    [
        ("*", "contoso.com", (0, 0)),
        ("*", "sub.contoso.com", (0, 0)),
        ("*.contoso.com", "contoso.com", (2, 0)),
        ("*.contoso.com", "sub.contoso.com", (2, 0)),
        ("*.contoso.com", "a.b.contoso.com", (2, 0)),
        ("*.com", "contoso.com", (1, 0)),
        ("contoso.com", "contoso.com", (2, 1)),
        ("sub.contoso.com", "sub.contoso.com", (3, 1)),
        ("*.sub.contoso.com", "sub.contoso.com", (3, 0)),
        # case and a trailing dot of the recipient domain do not matter
        ("contoso.com", "CONTOSO.COM", (2, 1)),
        ("CONTOSO.com", "contoso.com", (2, 1)),
        ("contoso.com", "contoso.com.", (2, 1)),
        # no match
        ("contoso.com", "sub.contoso.com", None),  # a plain domain never matches subdomains
        ("contoso.com", "fabrikam.com", None),
        ("sub.contoso.com", "contoso.com", None),
        ("*.contoso.com", "xcontoso.com", None),
        ("*.contoso.com", "contoso.com.evil.example", None),
        ("*.sub.contoso.com", "contoso.com", None),
    ],
)
def test_domain_specificity(pattern: str, domain: str, expected: tuple[int, int] | None) -> None:
    assert domain_specificity(pattern, domain) == expected


@pytest.mark.parametrize(
    ("domain", "ranking"),
    [
        # most specific first (reference 2.2 step 3)
        ("sub.contoso.com", ["sub.contoso.com", "*.sub.contoso.com", "*.contoso.com", "*.com", "*"]),
        ("contoso.com", ["contoso.com", "*.contoso.com", "*.com", "*"]),
        ("marketing.contoso.com", ["marketing.contoso.com", "*.contoso.com", "*"]),
    ],
)
def test_specificity_orders_exact_over_wildcard_over_star(domain: str, ranking: list[str]) -> None:
    keys = [domain_specificity(p, domain) for p in ranking]
    assert None not in keys
    assert keys == sorted(keys, reverse=True)  # type: ignore[type-var]
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize(
    ("text", "domain", "expected"),
    [
        ("*", "fabrikam.com", (0, 0)),
        ("contoso.com;5", "contoso.com", (2, 1)),
        ("contoso.com", "sub.contoso.com", None),
        ("*.contoso.com", "sub.contoso.com", (2, 0)),
        # non-SMTP spaces never match an SMTP recipient
        ("X400:o=MySite;p=MyOrg;a=adatum;c=us;1", "contoso.com", None),
        ("Notes:contoso.com", "contoso.com", None),
    ],
)
def test_address_space_match(text: str, domain: str, expected: tuple[int, int] | None) -> None:
    assert AddressSpace.parse(text).match(domain) == expected


@pytest.mark.parametrize(
    ("text", "is_smtp"),
    [("*", True), ("smtp:contoso.com", True), ("X400:o=a;c=us;1", False), ("Notes:x", False)],
)
def test_is_smtp(text: str, is_smtp: bool) -> None:
    assert AddressSpace.parse(text).is_smtp is is_smtp


# --- is_valid_domain ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "valid"),
    [
        ("contoso.com", True),
        ("a.b.c.contoso.com", True),
        ("localhost", True),
        ("xn--bcher-kva.de", True),
        ("bücher.de", True),
        ("a-b.com", True),
        ("", False),
        ("contoso.com.", False),
        ("-a.com", False),
        ("a-.com", False),
        ("a..com", False),
        ("con_toso.com", False),
        ("x" * 63 + ".com", True),
        ("x" * 64 + ".com", False),
        (".".join(["a" * 60] * 5), False),  # longer than 253
    ],
)
def test_is_valid_domain(domain: str, valid: bool) -> None:
    assert is_valid_domain(domain) is valid


# --- lists --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "items"),
    [
        ("a, b ,c", ["a", "b", "c"]),
        ("a,,b,", ["a", "b"]),
        (["a,b", "c"], ["a", "b", "c"]),
        (("a",), ["a"]),
        ('"X400:o=a,b;c=us;1",contoso.com', ["X400:o=a,b;c=us;1", "contoso.com"]),
        ("", []),
    ],
)
def test_split_list(value: str | list[str] | tuple[str, ...], items: list[str]) -> None:
    assert split_list(value) == items


def test_parse_address_spaces_keeps_order_and_costs() -> None:
    spaces = parse_address_spaces('"contoso.com;2","fabrikam.com;3",*')
    assert [str(s) for s in spaces] == [
        "smtp:contoso.com;2",
        "smtp:fabrikam.com;3",
        "smtp:*;1",
    ]


@pytest.mark.parametrize(
    "value",
    ["contoso.com,CONTOSO.com", "contoso.com;1,contoso.com;2", ["*", "SMTP:*;5"]],
)
def test_parse_address_spaces_rejects_duplicates(value: str | list[str]) -> None:
    with pytest.raises(ValidationError, match="twice"):
        parse_address_spaces(value)


@pytest.mark.parametrize("value", ["", " , ", []])
def test_parse_address_spaces_requires_one(value: str | list[str]) -> None:
    with pytest.raises(ValidationError, match="at least one"):
        parse_address_spaces(value)
