"""The result of routing one recipient: which connector, which queue, which next hops."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailhop.model.connector import SendConnector
from mailhop.outcome import Reply

SMART_HOST = "SmartHostConnectorDelivery"
DNS = "DnsConnectorDelivery"
RELAY_TO_SOURCE = "SmtpRelayToConnectorSourceServers"
UNREACHABLE = "Unreachable"
UNDEFINED = "Undefined"  # Submission and Poison

UNREACHABLE_QUEUE = "Unreachable"
SUBMISSION_QUEUE = "Submission"
POISON_QUEUE = "Poison"


@dataclass(frozen=True, slots=True)
class Route:
    delivery_type: str
    next_hop_domain: str
    next_hops: tuple[str, ...]
    reason: str
    connector: SendConnector | None = None
    # Set when routing itself fails the recipient for good (e.g. 5.3.4 ROUTING.SizeLimit).
    failure: Reply | None = None

    @property
    def queue(self) -> str:
        """The queue this recipient waits in: one per next hop, as Exchange's NextHopSolutionKey."""
        if self.connector is None:
            return UNREACHABLE_QUEUE
        if self.delivery_type == DNS:
            return f"{self.next_hop_domain}"
        return self.connector.name

    @property
    def connector_guid(self) -> str | None:
        return self.connector.guid if self.connector else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Connector": self.connector.name if self.connector else None,
            "DeliveryType": self.delivery_type,
            "NextHopDomain": self.next_hop_domain,
            "NextHops": list(self.next_hops),
            "Queue": self.queue,
            "Reason": self.reason,
        }
        if self.failure is not None:
            out["Failure"] = str(self.failure)
        return out
