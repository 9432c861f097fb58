"""Credentials a send connector presents to its smart hosts (SmartHostAuthMechanism).

``BasicAuth``/``BasicAuthRequireTLS``: the user name of AuthenticationCredential and
the password the CLI stored with ``--password-file`` (sealed in the store, never
listed).  ``XOAUTH2``: the access token read from AuthenticationTokenFile at every
connection, so that an external refresher can replace it; the file must be inside
``[server] token_directory`` (so a token holder cannot make the server send any file
it can read as a bearer token), and it is only ever sent over TLS.  ``None``/``ExternalAuthoritative``: no AUTH.
A missing password or token raises ``ConfigError`` with the reason.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from mailhop.errors import ConfigError, ValidationError
from mailhop.model.connector import SendConnector
from mailhop.sealing import Sealer
from mailhop.smtp.session import AuthPlan
from mailhop.store.base import Connectors

MAX_TOKEN = 16 * 1024
_TOKEN = re.compile(r"[\x21-\x7e]+")  # an OAuth 2.0 access token: printable ASCII, no spaces


def token_file(directory: Path, configured: str) -> Path:
    """Where ``AuthenticationTokenFile`` points, which must be inside ``directory`` once every
    symbolic link is resolved; ValidationError naming both otherwise."""
    base = directory.resolve()
    path = (directory / configured).resolve()  # an absolute configured path stays as it is
    if path != base and base not in path.parents:
        raise ValidationError(f"AuthenticationTokenFile: '{configured}' is not in the token directory {base} "
                              "([server] token_directory); put the token file there")
    return path


def read_token(directory: Path, configured: str) -> str:
    """The access token; ConfigError (a connector error, never an exception in delivery) when the
    file is outside the directory, unreadable, too large, empty or not a token."""
    try:
        path = token_file(directory, configured)
    except ValidationError as exc:
        raise ConfigError(str(exc)) from None
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_TOKEN + 1)
    except OSError as exc:
        raise ConfigError(f"the XOAUTH2 token file {path} cannot be read: {exc.strerror}") from None
    if len(data) > MAX_TOKEN:
        raise ConfigError(f"the XOAUTH2 token file {path} is larger than {MAX_TOKEN} bytes: not a token")
    token = data.strip()
    if not token:
        raise ConfigError(f"the XOAUTH2 token file {path} is empty")
    if not _TOKEN.fullmatch(token.decode("latin-1")):
        raise ConfigError(f"the XOAUTH2 token file {path} does not hold an access token (binary or spaces)")
    return token.decode("ascii")


class Credentials:
    def __init__(self, connectors: Connectors, sealer: Sealer, token_directory: Path) -> None:
        self.connectors = connectors
        self.sealer = sealer
        self.token_directory = token_directory
        self._secrets: dict[str, str | None] = {}

    def invalidate(self) -> None:
        """Forget cached passwords (after a connector change)."""
        self._secrets.clear()

    async def plan(self, connector: SendConnector) -> AuthPlan | None:
        mechanism = connector.smart_host_auth_mechanism
        if mechanism in ("None", "ExternalAuthoritative") or connector.dns_routing_enabled:
            return None
        user = connector.authentication_credential or ""
        if mechanism == "XOAUTH2":
            token = await asyncio.to_thread(read_token, self.token_directory,
                                            connector.authentication_token_file or "")
            return AuthPlan(user, token, xoauth2=True, require_tls=True)
        if connector.guid not in self._secrets:
            stored = await self.connectors.secret(connector.guid)
            self._secrets[connector.guid] = self.sealer.open(stored) if stored else None
        secret = self._secrets[connector.guid]
        if not secret:
            raise ConfigError(f"no password is stored for connector '{connector.name}' (use --password-file)")
        return AuthPlan(user, secret, require_tls=mechanism == "BasicAuthRequireTLS")
