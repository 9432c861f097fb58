"""SMTP AUTH users of the receive connectors: a file of names and scrypt hashes.

One ``name:scrypt$n$r$p$salt$hash`` line per user (base64 salt and hash), written
atomically with mode 0600 by ``mailhop user add``; the running server re-reads
the file when it changes, so users take effect without a restart.  Passwords are
never stored or logged in clear.  A malformed line is skipped (that user cannot
log in), never fatal.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import hmac
import os
import re
from pathlib import Path

from mailhop.errors import ValidationError
from mailhop.private import private_dir

N, R, P = 2**14, 8, 1
_NAME = re.compile(r"^[A-Za-z0-9._@+-]{1,128}$")


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=N, r=R, p=P, dklen=32)
    return f"scrypt${N}${R}${P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_b64, hash_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(hash_b64)
        digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=int(n), r=int(r), p=int(p),
                                dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


def read_users(path: Path) -> dict[str, str]:
    users: dict[str, str] = {}
    if not path.exists():
        return users
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, stored = line.partition(":")
        if sep and _NAME.match(name) and stored.startswith("scrypt$"):
            users[name.lower()] = stored
    return users


def _write(path: Path, users: dict[str, str]) -> None:
    private_dir(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("".join(f"{name}:{stored}\n" for name, stored in sorted(users.items())))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def add_user(path: Path, name: str, password: str) -> None:
    if not _NAME.match(name):
        raise ValidationError(f"'{name}' is not a valid user name (letters, digits and . _ @ + -)")
    if not password:
        raise ValidationError("the password is empty")
    users = read_users(path)
    users[name.lower()] = hash_password(password)
    _write(path, users)


def remove_user(path: Path, name: str) -> None:
    users = read_users(path)
    if users.pop(name.lower(), None) is None:
        raise ValidationError(f"there is no user '{name}'")
    _write(path, users)


# Password hashing runs in a pool of its own: a flood of AUTH attempts queues here instead of
# taking the default pool that DNS lookups and file reads of the server share.
_HASHING = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="mailhop-auth")


class UserStore:
    """The users file as the server sees it, re-read when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, str] = {}
        # What an unknown name is checked against: the same cost as a known one (one scrypt),
        # so the time of a refusal does not tell whether the name exists.
        self._decoy = hash_password(os.urandom(16).hex())

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            self._users, self._stamp = {}, None
            return
        if stamp != self._stamp:
            self._users, self._stamp = read_users(self.path), stamp

    def verify(self, name: str, password: str) -> bool:
        self._refresh()
        stored = self._users.get(name.lower())
        matches = check_password(password, stored or self._decoy)
        return matches and stored is not None

    async def check(self, name: str, password: str) -> bool:
        """``verify`` in the hashing pool."""
        return await asyncio.get_running_loop().run_in_executor(_HASHING, self.verify, name, password)
