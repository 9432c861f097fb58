"""DKIM signing configs: New-, Get-, Set-, Rotate- and Remove-DkimSigningConfig for every surface.

Exchange Online's model, with the keys here rather than behind CNAMEs: ``new`` makes the
keys of slot 1 (``selector1``, and ``selector1-ed25519`` beside it) and signing starts
with them at once (a receiver that finds no record treats the signature as none, so
nothing is lost before they are published).  ``rotate`` makes new keys in the other
slot, which becomes ``PendingSelector``; signing moves to it when ``check`` sees its
records published (``show`` checks, and the server checks every ``[dkim]
check_interval``), or at once with ``force``.  The slot left keeps its keys, so mail
signed before the switch still verifies; a rotation that would replace keys that may
still sign queued mail (within ``[queue] message_expiration_timeout`` of the last
switch) is refused unless forced.

Private keys are made here, sealed (``sealing``) and handed to the store; no result of
this service holds one.  Results are keyed by Exchange's names.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from mailhop.clock import Clock
from mailhop.config import Settings
from mailhop.delivery.dns import Resolver
from mailhop.dkim import published as dns_check
from mailhop.dkim.keys import new_key
from mailhop.errors import MailhopError, ValidationError
from mailhop.model import dkim as model
from mailhop.model.connector import parse_bool
from mailhop.model.dkim import DkimConfig, PublicKey
from mailhop.sealing import Sealer
from mailhop.store.base import DkimKeys
from mailhop.tracking.log import iso

log = logging.getLogger(__name__)

JSON = dict[str, Any]


class DkimService:
    def __init__(self, dkim: DkimKeys, settings: Settings, sealer: Sealer, resolver: Resolver, clock: Clock) -> None:
        self.dkim = dkim
        self.settings = settings
        self.sealer = sealer
        self.resolver = resolver
        self.clock = clock

    def view(self, config: DkimConfig) -> JSON:
        return to_exchange(config, self._removable_after(config))

    def _removable_after(self, config: DkimConfig) -> float | None:
        """When the keys of the slot signing left can no longer sign any queued message."""
        if config.switched_at is None or config.pending is not None or not config.keys(config.inactive):
            return None
        return config.switched_at + self.settings.queue.message_expiration_timeout

    async def _make_keys(self, slot: int, algorithms: tuple[str, ...],
                         key_size: int) -> tuple[list[PublicKey], dict[str, str]]:
        now = self.clock.now()
        keys, private = [], {}
        for algorithm in algorithms:
            made = await asyncio.to_thread(new_key, algorithm, key_size)  # a 4096-bit key takes seconds
            selector = model.selector_name(slot, algorithm)
            keys.append(PublicKey(algorithm, selector, made.public, now))
            private[selector] = self.sealer.seal(made.private_pem)
        return keys, private

    async def new(self, domain: str, algorithms: str | list[str] | None = None, key_size: int | None = None,
                  enabled: Any = True, sub_domains: Any = False) -> JSON:
        name = model.domain_name(domain)
        algs = model.algorithms(algorithms) if algorithms is not None else model.ALGORITHMS
        size = model.key_size(model.DEFAULT_KEY_SIZE if key_size is None else _int(key_size))
        keys, private = await self._make_keys(1, algs, size)
        config = DkimConfig(name, algs, size, parse_bool(enabled, "Enabled"), parse_bool(sub_domains, "SubDomains"),
                            slots=(tuple(keys), ()),
                            created_at=self.clock.now())
        await self.dkim.create(config, private)
        log.info("DKIM signing config for %s created (%s)", name, ", ".join(k.selector for k in keys))
        return self.view(config)

    async def list(self) -> list[JSON]:
        return [self.view(c) for c in await self.dkim.list()]

    async def get(self, domain: str) -> JSON:
        return self.view(await self.dkim.get(model.domain_name(domain)))

    async def show(self, domain: str) -> JSON:
        """Get-DkimSigningConfig with a look at DNS: the status, and a pending rotation
        completed when its records are published."""
        return self.view(await self.check(model.domain_name(domain)))

    async def set(self, domain: str, enabled: Any = None, sub_domains: Any = None) -> JSON:
        if enabled is None and sub_domains is None:
            raise ValidationError("nothing to change: give Enabled or SubDomains")
        on = None if enabled is None else parse_bool(enabled, "Enabled")
        subs = None if sub_domains is None else parse_bool(sub_domains, "SubDomains")

        def change(c: DkimConfig) -> DkimConfig:
            return dataclasses.replace(c, enabled=c.enabled if on is None else on,
                                       sub_domains=c.sub_domains if subs is None else subs)

        return self.view(await self.dkim.update(model.domain_name(domain), change))

    async def rotate(self, domain: str, key_size: int | None = None, force: bool = False) -> JSON:
        name = model.domain_name(domain)
        current = await self.dkim.get(name)
        size = model.key_size(current.key_size if key_size is None else _int(key_size))
        now = self.clock.now()
        removable = self._removable_after(current)
        if removable is not None and now < removable and not force:
            left = current.keys(current.inactive)[0].selector
            raise ValidationError(
                f"The keys of {left} signed mail until {iso(current.switched_at or now)} that may still be queued; "
                f"rotate again after {iso(removable)}, or with --force")
        slot = current.inactive
        keys, private = await self._make_keys(slot, current.algorithms, size)

        def change(c: DkimConfig) -> DkimConfig:
            rotated = dataclasses.replace(c.with_keys(slot, keys), key_size=size, rotated_at=now, pending=slot)
            if force:
                rotated = dataclasses.replace(rotated, active=slot, pending=None, switched_at=now)
            return rotated

        updated = await self.dkim.update(name, change, private)
        log.info("DKIM keys of %s rotated: %s %s", name, ", ".join(k.selector for k in keys),
                 "signs now (forced)" if force else "signs once published in DNS")
        return self.view(updated)

    async def remove(self, domain: str) -> str:
        return await self.dkim.delete(model.domain_name(domain))

    async def check(self, domain: str) -> DkimConfig:
        """Look the config's keys up in DNS; record the status, and switch to a pending
        slot whose records are all published."""
        config = await self.dkim.get(domain)
        pending = None
        if config.pending is not None:
            pending = await dns_check.check_keys(self.resolver, config.domain, config.keys(config.pending))
        switch = pending is not None and dns_check.published(pending)
        slot = config.pending if switch and config.pending is not None else config.active
        checks = await dns_check.check_keys(self.resolver, config.domain, config.keys(slot))
        status = dns_check.status(checks)
        detail = "; ".join(c.detail for c in checks + (pending or []) if c.state != dns_check.MATCH)
        now = self.clock.now()

        def change(c: DkimConfig) -> DkimConfig:
            updated = dataclasses.replace(c, status=status or c.status, status_detail=detail, last_checked=now)
            if switch and c.pending == slot:  # unless a rotation moved on meanwhile
                updated = dataclasses.replace(updated, active=slot, pending=None, switched_at=now)
            return updated

        updated = await self.dkim.update(config.domain, change)
        if switch:
            log.info("DKIM: %s signs with %s from now on (its records are published)", config.domain,
                     ", ".join(k.selector for k in updated.keys(updated.active)))
        return updated

    async def check_all(self) -> None:
        """The server's periodic look at DNS: every enabled config."""
        for config in await self.dkim.list():
            if config.enabled:
                try:
                    await self.check(config.domain)
                except MailhopError as exc:  # removed meanwhile, or the store failed: next time
                    log.warning("DKIM: %s not checked: %s", config.domain, exc)

    async def follow_dns(self, interval: float) -> None:
        """``check_all`` now and every ``interval`` until cancelled."""
        while True:
            await self.check_all()
            await self.clock.sleep(interval)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"KeySize: '{value}' is not a number") from None


# --- what the surfaces show --------------------------------------------------------------------

def _slot_view(config: DkimConfig, slot: int) -> JSON:
    keys = config.keys(slot)
    first = keys[0] if keys else None
    out: JSON = {
        f"Selector{slot}": first.selector if first else model.selector_name(slot, config.algorithms[0]),
        f"Selector{slot}PublicKey": first.record if first else None,
        f"Selector{slot}DnsName": first.dns_name(config.domain) if first else None,
    }
    for key in keys[1:]:  # the Ed25519 key beside the RSA one
        out[f"Selector{slot}Ed25519"] = key.selector
        out[f"Selector{slot}Ed25519PublicKey"] = key.record
        out[f"Selector{slot}Ed25519DnsName"] = key.dns_name(config.domain)
    return out


def records(config: DkimConfig) -> list[JSON]:
    """Every TXT record of the config, for publishing: the active slot's, then the other's."""
    out = []
    for slot in (config.active, config.inactive):
        role = "Active" if slot == config.active else ("Pending" if slot == config.pending else "Inactive")
        for key in config.keys(slot):
            out.append({"Name": key.dns_name(config.domain), "Type": "TXT", "Value": key.record,
                        "Selector": key.selector, "Algorithm": key.algorithm, "Role": role})
    return out


def to_exchange(config: DkimConfig, removable_after: float | None = None) -> JSON:
    active = config.keys(config.active)
    pending = config.keys(config.pending) if config.pending else ()
    out: JSON = {
        "Identity": config.domain,
        "Domain": config.domain,
        "Enabled": config.enabled,
        "SubDomains": config.sub_domains,
        "Algorithms": list(config.algorithms),
        "KeySize": config.key_size,
        "ActiveSelector": active[0].selector if active else None,
        "ActiveSelectors": [k.selector for k in active],
        "PendingSelector": pending[0].selector if pending else None,
    }
    out.update(_slot_view(config, 1))
    out.update(_slot_view(config, 2))
    out.update({
        "KeyCreationTime": iso(config.created_at),
        "LastRotationTime": iso(config.rotated_at) if config.rotated_at is not None else None,
        "Status": model.DISABLED if not config.enabled else config.status,
        "StatusDetail": config.status_detail,
        "LastChecked": iso(config.last_checked) if config.last_checked is not None else None,
        "InactiveSelectorRemovableAfter": iso(removable_after) if removable_after is not None else None,
        "Records": records(config),
    })
    return out
