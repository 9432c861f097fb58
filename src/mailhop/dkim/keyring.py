"""The keys a server signs with now, by domain, loaded from the store and kept current.

``Keyring.refresh`` reloads the signing configs when the store's DKIM version moved (a
change by the CLI, the API, another server, or a rotation that DNS confirmed): the
enabled configs' active keys are opened (``sealing``) and parsed once, so signing a
message costs no store read.  The server calls it every ``config_poll_interval``; the
receive side asks ``keys_for`` the domain of a message's From:.

A config whose keys cannot be opened (the secret key file of another server, a damaged
row) is reported once and kept as broken: ``keys_for`` raises ``SigningError`` for its
domains, so that mail which must be signed is refused with a 4xx rather than sent
unsigned.
"""

from __future__ import annotations

import email.utils
import logging
from dataclasses import dataclass

from mailhop.clock import Clock
from mailhop.dkim.canon import body_hash
from mailhop.dkim.keys import load_private
from mailhop.dkim.signer import SigningKey, sign
from mailhop.errors import MailhopError, SigningError
from mailhop.headers import block
from mailhop.model.dkim import DkimConfig, config_domains, domain_name
from mailhop.sealing import Sealer
from mailhop.store.base import DkimKeys

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Entry:
    config: DkimConfig
    keys: tuple[SigningKey, ...]
    broken: str | None = None


class Keyring:
    def __init__(self, dkim: DkimKeys, sealer: Sealer) -> None:
        self.dkim = dkim
        self.sealer = sealer
        self.version = -1
        self._entries: dict[str, _Entry] = {}
        self._reported: set[str] = set()

    @property
    def active(self) -> bool:
        """Whether any domain is signed: the receive side hashes bodies only then."""
        return bool(self._entries)

    async def refresh(self) -> None:
        version = await self.dkim.version()
        if version == self.version:
            return
        entries: dict[str, _Entry] = {}
        for config in await self.dkim.list():
            if config.enabled:
                entries[config.domain] = await self._load(config)
        self._entries = entries
        self.version = version
        signing = ", ".join(f"{d} ({', '.join(k.selector for k in e.keys) or 'broken'})"
                            for d, e in sorted(entries.items()))
        log.info("DKIM signing configs loaded (version %d): %s", version, signing or "none enabled")

    async def follow(self, clock: Clock, interval: float) -> None:
        """Refresh every ``interval`` until cancelled; a failed look is logged and tried again."""
        while True:
            await clock.sleep(interval)
            try:
                await self.refresh()
            except MailhopError as exc:
                log.warning("DKIM signing configs not reloaded: %s", exc)

    async def _load(self, config: DkimConfig) -> _Entry:
        try:
            sealed = await self.dkim.private_keys(config.domain)
            keys = []
            for public in config.keys(config.active):
                if public.selector not in sealed:
                    raise SigningError(f"the private key of selector {public.selector} is missing")
                pem = self.sealer.open(sealed[public.selector])
                keys.append(SigningKey(config.domain, public.selector, public.algorithm,
                                       load_private(pem, public.algorithm)))
        except MailhopError as exc:
            reason = f"DKIM signing config '{config.domain}' cannot sign: {exc}"
            if reason not in self._reported:
                self._reported.add(reason)
                log.error("%s; mail from the domain is deferred (451) until it is fixed", reason)
            return _Entry(config, (), reason)
        return _Entry(config, tuple(keys))

    def keys_for(self, domain: str) -> tuple[SigningKey, ...]:
        """The keys to sign mail from ``domain`` with: its own config's, else the nearest parent
        domain's that has SubDomains; () when no config covers it."""
        name = domain.lower().rstrip(".")
        for candidate in config_domains(name):
            entry = self._entries.get(candidate)
            if entry is not None and entry.config.covers(name):
                if entry.broken:
                    raise SigningError(entry.broken)
                return entry.keys
        return ()


def sign_message(keyring: Keyring | None, message: bytes, now: float) -> bytes:
    """A message mailhop writes itself (an NDR, a DSN), signed for the domain of its From:
    when a config covers it.  A config that cannot sign leaves it unsigned (it is logged):
    a report is better late-verified than not sent."""
    if keyring is None:
        return message
    header_block = block.split(message)[0]
    domain = from_domain(block.first(block.fields(header_block), "From"))
    try:
        keys = keyring.keys_for(domain) if domain else ()
    except SigningError:
        return message
    if not keys:
        return message
    return sign(header_block, body_hash(message), keys, now) + message


def from_domain(from_value: str | None) -> str | None:
    """The domain of the (first) address of a From: field, as DKIM's d= is compared, or None."""
    if not from_value:
        return None
    addresses = [a for _, a in email.utils.getaddresses([from_value]) if "@" in a]
    if not addresses:
        return None
    try:
        return domain_name(addresses[0].rpartition("@")[2])
    except ValueError:
        return None
