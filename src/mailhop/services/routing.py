"""``route explain``: the routing decision for a recipient over the stored connectors, sending nothing."""

from __future__ import annotations

from typing import Any

from mailhop.errors import ValidationError
from mailhop.routing.router import Router
from mailhop.store.base import Connectors


class RoutingService:
    def __init__(self, connectors: Connectors, server_name: str) -> None:
        self.connectors = connectors
        self.server_name = server_name

    async def explain(self, recipient: str, sender: str = "", size: int = 0) -> dict[str, Any]:
        if "@" not in recipient:
            raise ValidationError(f"'{recipient}' is not an email address")
        router = Router(await self.connectors.list(), self.server_name)
        decision = router.route(recipient, sender, size)
        return {"Recipient": recipient, "Sender": sender or None, "Size": size,
                "Server": self.server_name, **decision.to_json()}
