"""Pick the send connector for a recipient, the way Exchange's categorizer does.

Rules (reference section 2.2), in order:
1. drop disabled connectors and those whose address spaces do not match the
   recipient domain, and those scoped to other senders (``SenderDomains``);
2. drop connectors whose MaxMessageSize is below the message size (if that
   leaves none, the recipient fails with ``5.3.4 ROUTING.SizeLimit``);
3. the most specific address space wins (``sub.contoso.com`` > ``*.contoso.com`` > ``*``);
4. then a sender-scoped connector over an unscoped one (mailhop's sender-based
   routing; a full address beats a domain);
5. then the lowest cost, then a connector this server is a source of, then name order.
No match leaves the recipient in the Unreachable queue.

``Router`` is immutable and built from the current connector list; build a new
one when the connectors change.  Lookups are indexed by domain, so routing
cost does not grow with the number of connectors that cannot match.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from mailhop.model.connector import SendConnector
from mailhop.model.route import DNS, RELAY_TO_SOURCE, UNREACHABLE, Route
from mailhop.outcome import NO_CONNECTOR, ROUTING_SIZE_LIMIT


def recipient_domain(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")


def _suffixes(domain: str) -> list[str]:
    """``a.b.c`` -> ``a.b.c``, ``b.c``, ``c``."""
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


class Router:
    def __init__(self, connectors: Iterable[SendConnector], server_name: str) -> None:
        self.server_name = server_name
        self.connectors = tuple(sorted(connectors, key=lambda c: c.name.lower()))
        self._exact: dict[str, list[SendConnector]] = defaultdict(list)
        self._wild: dict[str, list[SendConnector]] = defaultdict(list)
        self._star: list[SendConnector] = []  # '*' connectors for every sender
        # '*' connectors scoped to senders, by the scope's address or domain (``*.`` dropped):
        # a sender looks up only its own, so thousands of tenants' connectors cost nothing.
        self._star_by_sender: dict[str, list[SendConnector]] = defaultdict(list)
        for c in self.connectors:
            if not c.enabled:
                continue
            for space in c.address_spaces:
                if not space.is_smtp:
                    continue
                if space.address == "*":
                    if not c.sender_domains:
                        self._star.append(c)
                    for scope in c.sender_domains:
                        self._star_by_sender[scope.lower().removeprefix("*.")].append(c)
                elif space.address.startswith("*."):
                    self._wild[space.address[2:]].append(c)
                else:
                    self._exact[space.address].append(c)
        self.by_guid = {c.guid: c for c in self.connectors}

    def _candidates(self, domain: str, sender: str) -> list[SendConnector]:
        """A superset of the connectors that can match (``route`` checks each one)."""
        seen: dict[str, SendConnector] = {}
        for c in self._exact.get(domain, ()):
            seen[c.guid] = c
        for suffix in _suffixes(domain):
            for c in self._wild.get(suffix, ()):
                seen[c.guid] = c
        for c in self._star:
            seen[c.guid] = c
        if sender and self._star_by_sender:
            sender = sender.lower()
            for key in (sender, *_suffixes(sender.rpartition("@")[2])):
                for c in self._star_by_sender.get(key, ()):
                    seen[c.guid] = c
        return list(seen.values())

    def route(self, recipient: str, sender: str = "", size: int = 0) -> Route:
        domain = recipient_domain(recipient)
        matches = []
        for c in self._candidates(domain, sender):
            address_match = c.match_recipient(domain)
            sender_match = c.match_sender(sender)
            if address_match is None or sender_match is None:
                continue
            specificity, space = address_match
            local = c.is_source(self.server_name)
            key = (-specificity[0], -specificity[1], -sender_match, space.cost, 0 if local else 1, c.name.lower())
            matches.append((key, c))
        if not matches:
            return Route(UNREACHABLE, "Unreachable Domain", (), NO_CONNECTOR)
        fitting = [(k, c) for k, c in matches if c.max_message_size is None or size <= c.max_message_size]
        if not fitting:
            limits = ", ".join(f"{c.name} ({c.max_message_size} bytes)" for _, c in sorted(matches, key=lambda m: m[0]))
            return Route(
                UNREACHABLE, "Unreachable Domain", (),
                f"{ROUTING_SIZE_LIMIT.text}: the message ({size} bytes) is larger than every "
                f"matching connector: {limits}",
                failure=ROUTING_SIZE_LIMIT,
            )
        fitting.sort(key=lambda m: m[0])
        key, best = fitting[0]
        reason = self._reason(domain, sender, best, key, fitting, len(matches) - len(fitting))
        if not best.is_source(self.server_name):
            return Route(
                RELAY_TO_SOURCE, best.name, best.source_transport_servers,
                reason + f"; this server ({self.server_name}) is not a source transport server, "
                f"so a source server ({', '.join(best.source_transport_servers)}) delivers it",
                connector=best,
            )
        if best.delivery_type == DNS:
            return Route(DNS, domain, (domain,), reason, connector=best)
        hosts = tuple(str(h) for h in best.smart_hosts)
        return Route(best.delivery_type, ",".join(hosts), hosts, reason, connector=best)

    @staticmethod
    def _reason(
        domain: str, sender: str, best: SendConnector, key: tuple[object, ...],
        fitting: Sequence[tuple[tuple[object, ...], SendConnector]], too_small: int,
    ) -> str:
        matched = best.match_recipient(domain)
        assert matched is not None
        space = matched[1]
        parts = [f"address space {space} of connector '{best.name}' matches {domain}"]
        if best.sender_domains:
            parts.append(f"connector is scoped to sender {sender}")
        others = [c.name for _, c in fitting[1:]]
        if others:
            runner = fitting[1]
            why = (
                "more specific address space" if runner[0][:2] != key[:2]
                else "sender scope" if runner[0][2] != key[2]
                else "lower cost" if runner[0][3] != key[3]
                else "local source server" if runner[0][4] != key[4]
                else "name order"
            )
            parts.append(f"chosen over {', '.join(others)} by {why}")
        if too_small:
            parts.append(f"{too_small} matching connector(s) skipped: MaxMessageSize too small")
        return "; ".join(parts)
