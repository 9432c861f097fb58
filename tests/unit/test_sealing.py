"""Secrets at rest: smart-host passwords sealed with a key kept apart from the store, and
AuthenticationTokenFile confined to the token directory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mailhop.delivery.auth import read_token, token_file
from mailhop.errors import ConfigError, ValidationError
from mailhop.model.connector import new_connector
from mailhop.sealing import Sealer, is_sealed, reseal
from mailhop.testing.clock import VirtualClock
from mailhop.testing.store import MemoryStore


def test_a_sealed_secret_reveals_nothing_without_its_key(tmp_path: Path) -> None:
    sealer = Sealer(tmp_path / "keys" / "secret.key")
    sealed = sealer.seal("Pa55word!")
    assert is_sealed(sealed) and "Pa55word" not in sealed
    assert sealer.open(sealed) == "Pa55word!"
    key = tmp_path / "keys" / "secret.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert Sealer(key).open(sealed) == "Pa55word!"  # another process with the same key file
    other = Sealer(tmp_path / "other.key")
    other.seal("x")  # makes a key of its own
    with pytest.raises(ConfigError, match="sealed with another key"):
        other.open(sealed)
    os.unlink(key)
    with pytest.raises(ConfigError, match="is missing"):
        Sealer(key).open(sealed)


def test_a_secret_stored_in_clear_by_an_earlier_release_still_reads(tmp_path: Path) -> None:
    assert Sealer(tmp_path / "secret.key").open("legacy-clear") == "legacy-clear"
    assert not (tmp_path / "secret.key").exists()  # reading needs no key; only sealing makes one


async def test_reseal_seals_what_is_still_in_clear(tmp_path: Path) -> None:
    store = MemoryStore(VirtualClock())
    relay = new_connector({"Name": "Relay", "AddressSpaces": "*", "DNSRoutingEnabled": "false",
                           "SmartHosts": "relay.test", "SmartHostAuthMechanism": "BasicAuth",
                           "AuthenticationCredential": "u"}, "EXCH01")
    await store.connectors.create(relay, secret="in-clear")
    sealer = Sealer(tmp_path / "secret.key")
    assert await reseal(store.connectors, sealer) == 1
    stored = await store.connectors.secret(relay.guid)
    assert stored is not None and is_sealed(stored) and sealer.open(stored) == "in-clear"
    assert await reseal(store.connectors, sealer) == 0


def test_token_files_must_be_inside_the_token_directory(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    (tokens / "relay.token").write_text("ya29.abc-DEF_123\n")
    assert read_token(tokens, "relay.token") == "ya29.abc-DEF_123"
    assert read_token(tokens, str(tokens / "relay.token")) == "ya29.abc-DEF_123"
    for outside in ("/etc/passwd", "../secret.key", str(tmp_path / "elsewhere")):
        with pytest.raises(ValidationError, match="is not in the token directory"):
            token_file(tokens, outside)
        with pytest.raises(ConfigError, match="is not in the token directory"):
            read_token(tokens, outside)
    (tokens / "sneaky").symlink_to("/etc/hostname")  # a link out of the directory is outside too
    with pytest.raises(ConfigError, match="is not in the token directory"):
        read_token(tokens, "sneaky")


def test_a_token_file_that_holds_no_token_is_a_connector_error(tmp_path: Path) -> None:
    (tmp_path / "binary").write_bytes(b"\x00\x01\xff token")
    (tmp_path / "big").write_text("x" * 20000)
    (tmp_path / "empty").write_text("\n")
    for name, why in (("binary", "does not hold an access token"), ("big", "larger than"), ("empty", "is empty"),
                      ("missing", "cannot be read")):
        with pytest.raises(ConfigError, match=why):
            read_token(tmp_path, name)
