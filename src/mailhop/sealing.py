"""Secrets kept sealed at rest: smart-host passwords are stored encrypted, the key kept apart.

``Sealer.seal`` encrypts with Fernet (AES-128-CBC and HMAC-SHA256, from ``cryptography``)
under the key in ``[server] secret_key_file`` (default ``data_dir/secret.key``, 0600,
made on first use), so a copy of the database alone reveals no password.  What it
writes is ``fernet:`` and the token; ``open`` reads that back, and takes a value without
the prefix (stored by a release before this one) as it is, so old stores keep working
until ``reseal`` (run at every server start) has sealed them.

Failures are ``ConfigError`` with one line: the key file missing or unreadable while a
sealed secret needs it, or a secret sealed with another key.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from mailhop.errors import ConfigError
from mailhop.private import FILE_MODE, private_dir
from mailhop.store.base import Connectors

log = logging.getLogger(__name__)

PREFIX = "fernet:"


class Sealer:
    def __init__(self, key_path: Path) -> None:
        self.key_path = key_path
        self._fernet: Fernet | None = None

    def _key(self, create: bool) -> Fernet:
        if self._fernet is None:
            try:
                key = self.key_path.read_bytes().strip()
            except FileNotFoundError:
                if not create:
                    raise ConfigError(f"the key file {self.key_path} is missing: the stored secrets cannot be "
                                      "read ([server] secret_key_file; every server needs the same one)") from None
                key = self._make()
            except OSError as exc:
                raise ConfigError(f"the key file {self.key_path} cannot be read: {exc.strerror}") from None
            try:
                self._fernet = Fernet(key)
            except ValueError:
                raise ConfigError(f"the key file {self.key_path} does not hold a Fernet key") from None
        return self._fernet

    def _make(self) -> bytes:
        private_dir(self.key_path.parent)
        key = Fernet.generate_key()
        try:
            fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:  # another process made it first: use that one
            return self.key_path.read_bytes().strip()
        with os.fdopen(fd, "wb") as fh:
            fh.write(key + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        log.info("made the key that seals stored secrets: %s", self.key_path)
        return key

    def seal(self, secret: str) -> str:
        return PREFIX + self._key(create=True).encrypt(secret.encode("utf-8")).decode("ascii")

    def open(self, stored: str) -> str:
        if not is_sealed(stored):
            return stored  # stored in clear by an earlier release; reseal() seals it
        try:
            return self._key(create=False).decrypt(stored[len(PREFIX):].encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise ConfigError(f"a stored secret was sealed with another key than {self.key_path}") from None


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


async def reseal(connectors: Connectors, sealer: Sealer) -> int:
    """Seal every secret still stored in clear; returns how many."""
    count = 0
    for connector in await connectors.list():
        secret = await connectors.secret(connector.guid)
        if secret and not is_sealed(secret):
            await connectors.update(connector.guid, lambda c: c, secret=sealer.seal(secret))
            count += 1
    if count:
        log.warning("sealed %d smart-host password(s) stored in clear by an earlier release", count)
    return count
