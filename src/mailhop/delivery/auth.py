"""Credentials a send connector presents to its smart hosts (SmartHostAuthMechanism).

``BasicAuth``/``BasicAuthRequireTLS``: the user name of AuthenticationCredential and
the password the CLI stored with ``--password-file`` (kept in the store, never
listed).  ``XOAUTH2``: the access token read from AuthenticationTokenFile at every
connection, so that an external refresher can replace it; it is only ever sent
over TLS, like BasicAuthRequireTLS.  ``None``/``ExternalAuthoritative``: no AUTH.
A missing password or token raises ``ConfigError`` with the reason.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from mailhop.errors import ConfigError
from mailhop.model.connector import SendConnector
from mailhop.smtp.session import AuthPlan
from mailhop.store.base import Connectors


class Credentials:
    def __init__(self, connectors: Connectors) -> None:
        self.connectors = connectors
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
            path = Path(connector.authentication_token_file or "")
            try:
                token = (await asyncio.to_thread(path.read_text, encoding="utf-8")).strip()
            except OSError as exc:
                raise ConfigError(f"the XOAUTH2 token file {path} cannot be read: {exc.strerror}") from None
            if not token:
                raise ConfigError(f"the XOAUTH2 token file {path} is empty")
            return AuthPlan(user, token, xoauth2=True, require_tls=True)
        if connector.guid not in self._secrets:
            self._secrets[connector.guid] = await self.connectors.secret(connector.guid)
        secret = self._secrets[connector.guid]
        if not secret:
            raise ConfigError(f"no password is stored for connector '{connector.name}' (use --password-file)")
        return AuthPlan(user, secret, require_tls=mechanism == "BasicAuthRequireTLS")
