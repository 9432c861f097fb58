"""The DKIM private keys a store holds, as text fragments to look for where they must never be.

``fragments`` opens every sealed key of the given domains and returns, for each PEM, its
whole base64 body, each of its lines, and 40-character slices every 24 characters
(so any 64 characters of the key in a row contain at least one slice).  ``assert_absent``
fails naming where a fragment was found, without printing the fragment itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mailhop.config import load
from mailhop.sealing import Sealer
from mailhop.store import open_store

SLICE, STEP = 40, 24


def pem_fragments(pem: str) -> list[str]:
    lines = [line.strip() for line in pem.strip().splitlines() if line.strip() and not line.startswith("-----")]
    body = "".join(lines)
    assert len(body) > SLICE, "not a PEM key"
    slices = [body[i:i + SLICE] for i in range(0, len(body) - SLICE + 1, STEP)] + [body[-SLICE:]]
    return [body, *lines, *slices]


async def fragments(store: Any, sealer: Sealer, domains: Iterable[str]) -> list[str]:
    out: list[str] = []
    for domain in domains:
        sealed = await store.dkim.private_keys(domain)
        assert sealed, f"no private keys stored for {domain}"
        for value in sealed.values():
            pem = sealer.open(value)
            assert "PRIVATE KEY" in pem
            out += pem_fragments(pem)
    return out


async def fragments_of_instance(config_path: Path, domains: Iterable[str]) -> list[str]:
    """The fragments from the store of a (stopped) ``mailhop serve`` instance's configuration."""
    settings = load(config_path)
    store = await open_store(settings)
    try:
        return await fragments(store, Sealer(settings.server.secret_key_path), domains)
    finally:
        await store.close()


def assert_absent(found_in: str, text: str, secrets: Iterable[str]) -> None:
    leaked = sum(1 for s in secrets if s in text)
    assert leaked == 0, f"{leaked} fragment(s) of a DKIM private key found in {found_in}"


def assert_public_only(records: Iterable[dict[str, Any]], secrets: list[str]) -> None:
    """The fragments are really private: none is part of a published (public) record, so a hit
    anywhere means a leak, not a coincidence."""
    for record in records:
        assert_absent(f"the public record {record['Name']}", record["Value"], secrets)
