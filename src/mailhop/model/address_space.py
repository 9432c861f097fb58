"""Address spaces of send connectors: ``[type:]space[;cost]`` as in Exchange.

``*`` matches every domain, ``contoso.com`` that domain only, ``*.contoso.com``
the domain and all its subdomains.  ``*contoso.com`` is refused, as Exchange
refuses it.  Cost is 1-100 (default 1); the type defaults to SMTP.  Non-SMTP
types (X400 or any text) are accepted and kept, but never match an SMTP
recipient; a non-SMTP space that contains ``;`` must carry an explicit cost.

Parsing errors raise ``ValidationError`` with a one-line message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailhop.errors import ValidationError

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$", re.IGNORECASE)


def is_valid_domain(domain: str) -> bool:
    """An RFC 1035 host name (letters, digits, hyphens; labels of 1-63)."""
    if not domain or len(domain) > 253 or domain.endswith("."):
        return False
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    return all(_LABEL.match(label) for label in ascii_domain.split("."))


def domain_specificity(pattern: str, domain: str) -> tuple[int, int] | None:
    """How specifically ``pattern`` (``*``, ``*.dom`` or ``dom``) matches ``domain``.

    Returns None when it does not match; otherwise a key where larger is more
    specific: (number of labels of the pattern's domain, 1 for an exact match).
    So ``sub.contoso.com`` > ``*.contoso.com`` > ``*`` for ``sub.contoso.com``,
    and ``contoso.com`` > ``*.contoso.com`` for ``contoso.com``.
    """
    domain = domain.lower().rstrip(".")
    pattern = pattern.lower()
    if pattern == "*":
        return (0, 0)
    if pattern.startswith("*."):
        base = pattern[2:]
        if domain == base or domain.endswith("." + base):
            return (base.count(".") + 1, 0)
        return None
    if domain == pattern:
        return (pattern.count(".") + 1, 1)
    return None


@dataclass(frozen=True, slots=True)
class AddressSpace:
    address: str
    cost: int = 1
    type: str = "SMTP"

    @property
    def is_smtp(self) -> bool:
        return self.type.upper() == "SMTP"

    def match(self, domain: str) -> tuple[int, int] | None:
        if not self.is_smtp:
            return None
        return domain_specificity(self.address, domain)

    def __str__(self) -> str:
        # Exchange shows the type in lower case in New-SendConnector's table: {smtp:*;1}
        return f"{self.type.lower() if self.is_smtp else self.type}:{self.address};{self.cost}"

    @classmethod
    def parse(cls, text: str) -> AddressSpace:
        raw = text.strip().strip('"').strip("'").strip()
        if not raw:
            raise ValidationError("AddressSpaces: an empty address space is not allowed")
        kind = "SMTP"
        rest = raw
        head, sep, tail = raw.partition(":")
        if sep and head and re.fullmatch(r"[A-Za-z0-9_-]+", head) and not head.isdigit():
            kind, rest = head, tail
        is_smtp = kind.upper() == "SMTP"
        cost_text: str | None = None
        if is_smtp:
            space, sep, cost_part = rest.partition(";")
            if sep:
                cost_text = cost_part
        else:
            space, sep, cost_part = rest.rpartition(";")
            if not sep:
                space = rest
            elif re.fullmatch(r"\s*\d+\s*", cost_part):
                cost_text = cost_part
            else:
                raise ValidationError(
                    f"AddressSpaces: '{raw}' is a {kind} address space containing ';', "
                    "so it must end with an explicit cost (e.g. ';1')"
                )
        space = space.strip()
        cost = 1
        if cost_text is not None:
            try:
                cost = int(cost_text.strip())
            except ValueError:
                raise ValidationError(
                    f"AddressSpaces: '{raw}' has an invalid cost '{cost_text}': use 1-100"
                ) from None
            if not 1 <= cost <= 100:
                raise ValidationError(
                    f"AddressSpaces: '{raw}' has cost {cost}, outside the allowed range 1-100"
                )
        if is_smtp:
            kind = "SMTP"
            space = _check_smtp_space(space, raw)
        elif not space:
            raise ValidationError(f"AddressSpaces: '{raw}' has an empty address")
        return cls(address=space, cost=cost, type=kind)


def _check_smtp_space(space: str, raw: str) -> str:
    if space == "*":
        return space
    if "*" in space:
        if space.startswith("*.") and "*" not in space[2:] and is_valid_domain(space[2:]):
            return space.lower()
        raise ValidationError(
            f"AddressSpaces: '{raw}' is not valid: a wildcard must be '*' alone "
            "or lead a domain as '*.contoso.com'"
        )
    if not is_valid_domain(space):
        raise ValidationError(f"AddressSpaces: '{raw}' is not a valid SMTP domain")
    return space.lower()


def parse_address_spaces(values: str | list[str] | tuple[str, ...]) -> tuple[AddressSpace, ...]:
    items = split_list(values)
    if not items:
        raise ValidationError("AddressSpaces: at least one address space is required")
    spaces = tuple(AddressSpace.parse(item) for item in items)
    seen: set[tuple[str, str]] = set()
    for space in spaces:
        key = (space.type.upper(), space.address.lower())
        if key in seen:
            raise ValidationError(f"AddressSpaces: '{space.address}' is listed twice")
        seen.add(key)
    return spaces


def split_list(values: str | list[str] | tuple[str, ...]) -> list[str]:
    """Split a comma-separated option (or take a list), dropping blanks.

    Non-SMTP address spaces may contain commas only inside quotes; SMTP ones never do.
    """
    if isinstance(values, list | tuple):
        out: list[str] = []
        for value in values:
            out.extend(split_list(value))
        return out
    parts: list[str] = []
    current = ""
    quote = ""
    for ch in values:
        if quote:
            if ch == quote:
                quote = ""
            else:
                current += ch
        elif ch in "\"'":
            quote = ch
        elif ch == ",":
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]
