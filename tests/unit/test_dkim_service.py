"""DkimService and Keyring over the in-memory store, a FakeResolver and the virtual clock.

The rules of the signing configs without a network: what is refused (one line, nothing
changed), the status a look at DNS records, rotation that switches only once every new
record is published (or at once with force), the refusal to rotate again while the keys
left may still sign queued mail, and the keyring that signs with whatever is active.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mailhop.config import from_mapping
from mailhop.dkim.keyring import Keyring
from mailhop.errors import ConflictError, NotFoundError, ValidationError
from mailhop.sealing import Sealer
from mailhop.services.dkim import DkimService
from mailhop.testing.clock import VirtualClock
from mailhop.testing.resolver import FakeResolver
from mailhop.testing.store import MemoryStore

DOMAIN = "contoso.test"
DAY = 86400.0


class World:
    def __init__(self, tmp: Path) -> None:
        self.settings = from_mapping({"server": {"name": "EXCH01", "data_dir": str(tmp / "data")},
                                      "queue": {"message_expiration_timeout": "2d"}})
        self.clock = VirtualClock()
        self.store = MemoryStore(self.clock)
        self.sealer = Sealer(tmp / "secret.key")
        self.service = DkimService(self.store.dkim, self.settings, self.sealer, FakeResolver(), self.clock)

    def publish(self, view: dict[str, Any], roles: tuple[str, ...] = ("Active", "Pending", "Inactive"),
                **extra: list[str]) -> None:
        """DNS from now on: the view's records of these roles, and ``extra`` names."""
        txt = {r["Name"]: [r["Value"]] for r in view["Records"] if r["Role"] in roles}
        txt.update(extra)
        self.service.resolver = FakeResolver(txt=txt)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


async def test_new_config_signs_with_slot_one_and_is_not_published(world: World) -> None:
    view = await world.service.new(DOMAIN, key_size=1024)
    assert view["ActiveSelectors"] == ["selector1", "selector1-ed25519"]
    assert view["Selector1PublicKey"].startswith("v=DKIM1; k=rsa; p=")
    assert view["Selector1Ed25519PublicKey"].startswith("v=DKIM1; k=ed25519; p=")
    assert view["Selector1DnsName"] == "selector1._domainkey.contoso.test"
    assert view["Selector2PublicKey"] is None and view["PendingSelector"] is None
    assert view["Status"] == "KeyNotPublished" and view["LastChecked"] is None
    shown = await world.service.show(DOMAIN)
    assert shown["Status"] == "KeyNotPublished" and shown["LastChecked"] is not None


@pytest.mark.parametrize("kwargs, message", [
    ({"key_size": 512}, "1024"),
    ({"key_size": 8192}, "4096"),
    ({"key_size": "big"}, "not a number"),
    ({"algorithms": "rsa-sha1"}, "rsa-sha1"),
])
async def test_bad_input_is_refused_and_nothing_is_made(world: World, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        await world.service.new(DOMAIN, **kwargs)
    assert await world.service.list() == []


async def test_bad_domain_and_duplicate_are_refused(world: World) -> None:
    for bad in ("not a domain", "-x.test", "a..b", ""):
        with pytest.raises(ValidationError):
            await world.service.new(bad)
    await world.service.new(DOMAIN, algorithms="ed25519-sha256")
    with pytest.raises(ConflictError):
        await world.service.new("Contoso.Test.")
    with pytest.raises(NotFoundError):
        await world.service.show("fabrikam.test")
    assert len(await world.service.list()) == 1


async def test_status_valid_mismatch_and_disabled(world: World) -> None:
    view = await world.service.new(DOMAIN, key_size=1024)
    world.publish(view)
    assert (await world.service.show(DOMAIN))["Status"] == "Valid"
    other = await world.service.new("fabrikam.test", key_size=1024)
    # contoso's selector1 now publishes fabrikam's RSA key: a mismatch, named in the detail
    world.publish(view, **{"selector1._domainkey.contoso.test": [other["Selector1PublicKey"]]})
    shown = await world.service.show(DOMAIN)
    assert shown["Status"] == "KeyMismatch" and "selector1" in shown["StatusDetail"]
    off = await world.service.set(DOMAIN, enabled="false")
    assert off["Status"] == "Disabled" and off["Enabled"] is False
    with pytest.raises(ValidationError):
        await world.service.set(DOMAIN)


async def test_rotation_switches_only_when_every_new_record_is_published(world: World) -> None:
    view = await world.service.new(DOMAIN, key_size=1024)
    world.publish(view)
    await world.service.show(DOMAIN)
    await world.clock.advance(DAY)
    rotated = await world.service.rotate(DOMAIN, key_size=2048)
    assert (rotated["ActiveSelector"], rotated["PendingSelector"]) == ("selector1", "selector2")
    assert rotated["KeySize"] == 2048 and rotated["LastRotationTime"] is not None
    assert (await world.service.show(DOMAIN))["ActiveSelector"] == "selector1"  # nothing of slot 2 published

    # Only the RSA key of slot 2 published: still slot 1 (the Ed25519 one would not verify).
    rsa_only = {"Records": [r for r in rotated["Records"] if r["Selector"] != "selector2-ed25519"]}
    world.publish(rsa_only)
    assert (await world.service.show(DOMAIN))["ActiveSelector"] == "selector1"

    world.publish(rotated)
    switched = await world.service.show(DOMAIN)
    assert switched["ActiveSelectors"] == ["selector2", "selector2-ed25519"]
    assert switched["PendingSelector"] is None and switched["Status"] == "Valid"
    # slot 1 keeps its keys (mail signed before still verifies) until its keys can sign nothing queued
    assert switched["Selector1PublicKey"] == view["Selector1PublicKey"]
    removable = switched["InactiveSelectorRemovableAfter"]
    assert removable is not None

    with pytest.raises(ValidationError, match="--force"):
        await world.service.rotate(DOMAIN)
    await world.clock.advance(2 * DAY + 1)
    again = await world.service.rotate(DOMAIN)
    assert again["PendingSelector"] == "selector1" and again["Selector1PublicKey"] != view["Selector1PublicKey"]


async def test_forced_rotation_switches_at_once(world: World) -> None:
    view = await world.service.new(DOMAIN, algorithms="ed25519-sha256")
    forced = await world.service.rotate(DOMAIN, force=True)
    assert forced["ActiveSelector"] == "selector2-ed25519" and forced["PendingSelector"] is None
    assert forced["Selector1PublicKey"] == view["Selector1PublicKey"]
    forced_again = await world.service.rotate(DOMAIN, force=True)  # force also skips the wait
    assert forced_again["ActiveSelector"] == "selector1-ed25519"


async def test_keyring_follows_the_active_slot_and_sub_domains(world: World) -> None:
    keyring = Keyring(world.store.dkim, world.sealer)
    await keyring.refresh()
    assert not keyring.active and keyring.keys_for(DOMAIN) == ()
    await world.service.new(DOMAIN, key_size=1024)
    await keyring.refresh()
    assert [k.selector for k in keyring.keys_for(DOMAIN)] == ["selector1", "selector1-ed25519"]
    assert keyring.keys_for("mail.contoso.test") == ()
    await world.service.set(DOMAIN, sub_domains=True)
    await keyring.refresh()
    assert [k.domain for k in keyring.keys_for("mail.contoso.test")] == [DOMAIN, DOMAIN]
    await world.service.rotate(DOMAIN, force=True)
    await keyring.refresh()
    assert [k.selector for k in keyring.keys_for(DOMAIN)] == ["selector2", "selector2-ed25519"]
    await world.service.set(DOMAIN, enabled=False)
    await keyring.refresh()
    assert keyring.keys_for(DOMAIN) == () and not keyring.active
