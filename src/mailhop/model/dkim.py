"""DKIM signing configs, one per sending domain: values only, keyed by Exchange Online's names.

A config (``New-DkimSigningConfig``) has two selector slots, as Exchange Online's
``selector1`` and ``selector2``; each slot holds one key per algorithm (RFC 8463 dual
signing: ``rsa-sha256`` and ``ed25519-sha256``).  One DNS name holds one key, so the
Ed25519 key of a slot lives at its own selector, ``selector1-ed25519``.  Signing uses
the ``active`` slot; ``rotate`` fills the other one and leaves it ``pending`` until its
records are seen in DNS (or ``--force``), and the slot it leaves keeps its keys until
the next rotation, for mail signed with them that is still on its way.

Private keys are not part of these values: the store keeps them apart, sealed
(``store.base.DkimKeys``).  ``to_record``/``from_record`` are the store's own JSON;
what the surfaces show is ``services.dkim``'s.

Validation raises ``ValidationError`` with one line (Exchange's wording where it has one).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mailhop.errors import ValidationError

RSA = "rsa-sha256"
ED25519 = "ed25519-sha256"
ALGORITHMS = (RSA, ED25519)  # signing order: RSA first (every verifier knows it)
KEY_TYPE = {RSA: "rsa", ED25519: "ed25519"}
SLOTS = (1, 2)
MIN_KEY_SIZE, MAX_KEY_SIZE, DEFAULT_KEY_SIZE = 1024, 4096, 2048

VALID = "Valid"
NOT_PUBLISHED = "KeyNotPublished"
MISMATCH = "KeyMismatch"
DISABLED = "Disabled"

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def domain_name(text: str) -> str:
    """A domain as DKIM's ``d=`` takes it (lower case, no trailing dot), or ValidationError."""
    name = text.strip().rstrip(".").lower()
    try:
        name = name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError:
        raise ValidationError(f"'{text}' is not a valid domain name") from None
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels) \
            or labels[-1].isdigit():
        raise ValidationError(f"'{text}' is not a valid domain name")
    return name


def selector_name(slot: int, algorithm: str) -> str:
    """``selector1`` for the RSA key of slot 1, ``selector1-ed25519`` for its Ed25519 key."""
    return f"selector{slot}" if algorithm == RSA else f"selector{slot}-ed25519"


def record_text(algorithm: str, public: str) -> str:
    """The TXT record to publish for a key (RFC 6376 section 3.6.1)."""
    return f"v=DKIM1; k={KEY_TYPE[algorithm]}; p={public}"


@dataclass(frozen=True, slots=True)
class PublicKey:
    algorithm: str
    selector: str  # the DNS label: selector1, selector1-ed25519
    public: str    # base64 of the public key (p=)
    created_at: float

    @property
    def record(self) -> str:
        return record_text(self.algorithm, self.public)

    def dns_name(self, domain: str) -> str:
        return f"{self.selector}._domainkey.{domain}"


@dataclass(frozen=True, slots=True)
class DkimConfig:
    domain: str
    algorithms: tuple[str, ...] = ALGORITHMS
    key_size: int = DEFAULT_KEY_SIZE
    enabled: bool = True
    sub_domains: bool = False
    slots: tuple[tuple[PublicKey, ...], tuple[PublicKey, ...]] = ((), ())
    active: int = 1
    pending: int | None = None          # the slot a rotation filled, until DNS shows it
    created_at: float = 0.0
    rotated_at: float | None = None     # the last rotate
    switched_at: float | None = None    # when signing last moved to another slot
    status: str = NOT_PUBLISHED  # a new key cannot be in DNS yet; then what the last look found
    status_detail: str = ""
    last_checked: float | None = None

    def keys(self, slot: int) -> tuple[PublicKey, ...]:
        return self.slots[slot - 1]

    @property
    def inactive(self) -> int:
        return 2 if self.active == 1 else 1

    def with_keys(self, slot: int, keys: Sequence[PublicKey]) -> DkimConfig:
        slots = (tuple(keys), self.slots[1]) if slot == 1 else (self.slots[0], tuple(keys))
        return dataclasses.replace(self, slots=slots)

    def covers(self, domain: str) -> bool:
        """Whether mail whose From: is in ``domain`` is signed with this config."""
        return domain == self.domain or (self.sub_domains and domain.endswith("." + self.domain))


def config_domains(domain: str) -> list[str]:
    """Where a config that signs mail from ``domain`` may be, nearest first: the domain
    itself, then each parent (that covers it when it has SubDomains), never the TLD."""
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]


def algorithms(values: Iterable[str] | str) -> tuple[str, ...]:
    """``rsa-sha256,ed25519-sha256`` (any order, any case) in signing order, or ValidationError."""
    given = [v.strip().lower() for v in (values.split(",") if isinstance(values, str) else values) if v.strip()]
    unknown = [v for v in given if v not in ALGORITHMS]
    if unknown:
        raise ValidationError(f"Unknown DKIM algorithm '{unknown[0]}': use {' or '.join(ALGORITHMS)}")
    if not given:
        raise ValidationError("Algorithms needs at least one of " + ", ".join(ALGORITHMS))
    return tuple(a for a in ALGORITHMS if a in given)


def key_size(value: int) -> int:
    if not MIN_KEY_SIZE <= value <= MAX_KEY_SIZE:
        raise ValidationError(f"KeySize {value} is out of range: RSA keys are {MIN_KEY_SIZE} to {MAX_KEY_SIZE} bits")
    return value


# --- the store's JSON ----------------------------------------------------------------------------

def to_record(config: DkimConfig) -> dict[str, Any]:
    data = dataclasses.asdict(config)
    data["algorithms"] = list(config.algorithms)
    data["slots"] = [[dataclasses.asdict(k) for k in slot] for slot in config.slots]
    return data


def from_record(data: dict[str, Any]) -> DkimConfig:
    slots = tuple(tuple(PublicKey(**k) for k in slot) for slot in data.get("slots", [[], []]))
    fields = {k: v for k, v in data.items() if k in {f.name for f in dataclasses.fields(DkimConfig)}}
    fields["slots"] = (slots[0], slots[1])
    fields["algorithms"] = tuple(data["algorithms"])
    return DkimConfig(**fields)


def kept_keys(config: DkimConfig, keys: Mapping[str, str]) -> dict[str, str]:
    """The private keys of the selectors ``config`` still has."""
    selectors = {k.selector for slot in config.slots for k in slot}
    return {selector: key for selector, key in keys.items() if selector in selectors}
