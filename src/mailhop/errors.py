"""The one exception tree of mailhop.

Every error that crosses a module boundary is a ``MailhopError``.  Exceptions of
libraries (sqlite3, psycopg, dnspython, ssl, sockets) are translated where they are
called; nothing above that boundary catches a library's exception type.
"""

from __future__ import annotations

from mailhop.outcome import Reply


class MailhopError(Exception):
    """Base of every error mailhop raises on purpose."""


class ConfigError(MailhopError, ValueError):
    """The server configuration (file, environment or flags) is invalid."""


class ValidationError(MailhopError, ValueError):
    """An object (send connector, address space, option) failed validation.

    The message is one line meant for an administrator, e.g. the CLI prints it
    as it is and the API returns it as the error detail.
    """


class NotFoundError(MailhopError, LookupError):
    """The named object (connector, queue, message) does not exist."""


class ConflictError(MailhopError):
    """The object would collide with an existing one (a duplicate name)."""


class StoreError(MailhopError):
    """The store could not carry out an operation; nothing was changed."""


class StorageFull(StoreError):
    """The file system under the store or the spool is full (ENOSPC, SQLITE_FULL, PostgreSQL's
    disk_full): receiving answers ``452 4.3.1``, as Exchange's back pressure and Postfix do."""


class ProtocolError(MailhopError):
    """A peer closed the connection or said something that is not SMTP."""


class LineTooLong(ProtocolError):
    """A command or reply line is longer than the protocol allows."""


class ConnectionFailure(MailhopError):
    """An endpoint could not carry a transaction; ``reply`` says why (always 4xx).

    ``stage`` names where it failed (connect, starttls, after-tls, helo, auth,
    config), so delivery can decide whether another attempt is allowed.
    """

    def __init__(self, reply: Reply, stage: str) -> None:
        super().__init__(str(reply))
        self.reply = reply
        self.stage = stage


class AuthenticationRequired(MailhopError):
    """No valid credential came with a request (the admin API answers 401)."""


class PermissionDenied(MailhopError):
    """The credential is valid but may not do this (the admin API answers 403)."""


class SigningError(MailhopError):
    """A message that must be DKIM-signed cannot be (its domain's keys cannot be opened)."""
