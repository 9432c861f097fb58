"""Send connectors: New-, Get-, Set- and Remove-SendConnector, one set of rules for every surface.

The model (``model.connector``) validates a connector on its own; here are the rules
that need this server's configuration or the caller's inputs: ``TlsCertificateName``
must name one of this server's ``[[certificates]]``, ``AuthenticationTokenFile`` must
be inside ``[server] token_directory``, and Basic authentication needs a password when
the connector is created; passwords are sealed before they are stored (``sealing``).  The CLI, the REST API and the control socket
call these methods and only translate names; results are keyed by Exchange's names.
"""

from __future__ import annotations

from typing import Any

from mailhop.config import Settings
from mailhop.delivery.auth import token_file
from mailhop.delivery.tls import check_certificate
from mailhop.errors import ValidationError
from mailhop.model.connector import SendConnector, new_connector, to_exchange, update_connector
from mailhop.sealing import Sealer
from mailhop.store.base import Connectors, QuarantinedConnector

JSON = dict[str, Any]
BASIC = ("BasicAuth", "BasicAuthRequireTLS")


def quarantined_view(q: QuarantinedConnector) -> JSON:
    return {"Identity": q.name, "Guid": q.guid, "Quarantined": True, "QuarantineReason": q.reason}


class ConnectorService:
    def __init__(self, connectors: Connectors, settings: Settings, sealer: Sealer) -> None:
        self.connectors = connectors
        self.settings = settings
        self.sealer = sealer

    async def list(self, quarantined: bool = True) -> list[JSON]:
        """Valid connectors as ``to_exchange`` writes them, then (unless ``quarantined`` is
        False) the quarantined ones with their reason."""
        loaded = await self.connectors.load()
        shown = [quarantined_view(q) for q in loaded.quarantined] if quarantined else []
        return [to_exchange(c) for c in loaded.valid] + shown

    async def get(self, name: str) -> JSON:
        return to_exchange(await self.connectors.get(name))

    def _check(self, c: SendConnector) -> None:
        check_certificate(self.settings.certificates, c)
        if c.authentication_token_file:
            token_file(self.settings.server.token_path, c.authentication_token_file)

    def _sealed(self, secret: str | None) -> str | None:
        return self.sealer.seal(secret) if secret else secret

    async def create(self, values: dict[str, Any], secret: str | None = None,
                     secret_hint: str = "Password") -> JSON:
        """``secret_hint`` names how the caller passes the password (``--password-file FILE``)."""
        created = new_connector(values, default_server=self.settings.server.name)
        self._check(created)
        if created.smart_host_auth_mechanism in BASIC and not secret:
            raise ValidationError(f"SmartHostAuthMechanism {created.smart_host_auth_mechanism} needs {secret_hint}")
        await self.connectors.create(created, self._sealed(secret))
        return to_exchange(created)

    async def update(self, name: str, values: dict[str, Any], secret: str | None = None) -> JSON:
        if not values and secret is None:
            raise ValidationError("nothing to change: give at least one property")

        def change(current: SendConnector) -> SendConnector:
            updated = update_connector(current, values)
            self._check(updated)
            return updated

        return to_exchange(await self.connectors.update(name, change, self._sealed(secret)))

    async def remove(self, name: str) -> str:
        """Remove-SendConnector; its queued mail is routed again (the config watch resubmits it)."""
        return await self.connectors.delete(name)
