"""The in-memory store's connectors, servers, tokens and DKIM configs (see ``mailhop.testing.store``)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Collection, Mapping
from typing import Any

from mailhop.clock import Clock
from mailhop.errors import ConflictError, NotFoundError, ValidationError
from mailhop.model.connector import SendConnector, from_exchange, to_exchange
from mailhop.model.dkim import DkimConfig, from_record, kept_keys, to_record
from mailhop.model.message import (
    ACTIVE,
)
from mailhop.store.base import (
    AdminToken,
    ConnectorSet,
    QuarantinedConnector,
    ServerInfo,
)
from mailhop.testing.memory_data import MemoryData


def _connector(guid: str, entry: dict[str, Any], check: bool = True) -> SendConnector:
    return from_exchange({**json.loads(entry["data"]), "Guid": guid}, check=check)


class MemoryConnectors:
    def __init__(self, data: MemoryData, clock: Clock) -> None:
        self.d = data
        self.clock = clock

    def _find(self, name: str) -> tuple[str, dict[str, Any]]:
        key = name.strip()
        for guid, entry in self.d.connectors.items():
            if entry["name"].lower() == key.lower() or guid == key:
                return guid, entry
        raise NotFoundError(f"The send connector '{name}' was not found")

    async def load(self) -> ConnectorSet:
        valid, quarantined = [], []
        for guid, entry in sorted(self.d.connectors.items(), key=lambda e: e[1]["name"].lower()):
            try:
                valid.append(_connector(guid, entry))
            except (ValueError, TypeError) as exc:
                quarantined.append(QuarantinedConnector(entry["name"], guid, str(exc)))
        return ConnectorSet(tuple(valid), tuple(quarantined))

    async def list(self) -> list[SendConnector]:
        return list((await self.load()).valid)

    async def get(self, name: str) -> SendConnector:
        guid, entry = self._find(name)
        try:
            return _connector(guid, entry)
        except (ValueError, TypeError) as exc:
            raise ValidationError(f"The send connector '{entry['name']}' is quarantined: {exc}") from None

    async def create(self, connector: SendConnector, secret: str | None = None) -> None:
        if any(e["name"].lower() == connector.name.lower() for e in self.d.connectors.values()) \
                or connector.guid in self.d.connectors:
            raise ConflictError(f"A send connector named '{connector.name}' already exists")
        self.d.connectors[connector.guid] = {"name": connector.name, "data": json.dumps(to_exchange(connector)),
                                             "secret": secret, "changed_at": self.clock.now()}
        self.d.version += 1

    async def update(self, name: str, change: Callable[[SendConnector], SendConnector],
                     secret: str | None = None) -> SendConnector:
        guid, entry = self._find(name)
        try:
            current = _connector(guid, entry, check=False)
        except (ValueError, TypeError) as exc:
            raise ValidationError(f"The send connector '{entry['name']}' is quarantined and cannot be "
                                  f"changed ({exc}); remove it and create it again") from None
        updated = change(current)
        if updated.name.lower() != current.name.lower() and any(
                e["name"].lower() == updated.name.lower() for g, e in self.d.connectors.items() if g != guid):
            raise ConflictError(f"A send connector named '{updated.name}' already exists")
        entry.update(name=updated.name, data=json.dumps(to_exchange(updated)), changed_at=self.clock.now())
        if secret is not None:
            entry["secret"] = secret
        self.d.version += 1
        return updated

    async def delete(self, name: str) -> str:
        guid, entry = self._find(name)
        del self.d.connectors[guid]
        self.d.version += 1
        return str(entry["name"])

    async def secret(self, guid: str) -> str | None:
        entry = self.d.connectors.get(guid)
        return entry["secret"] if entry else None

    async def version(self) -> int:
        return self.d.version


class MemoryServers:
    def __init__(self, data: MemoryData) -> None:
        self.d = data

    async def heartbeat(self, server: ServerInfo, lease_until: float, held: Collection[int] | None = None) -> None:
        old = self.d.servers.get(server.name.lower())
        requested = old.requested_state if old is not None else None
        name = old.name if old is not None else server.name
        self.d.servers[server.name.lower()] = dataclasses.replace(server, name=name, requested_state=requested)
        for r in self.d.recipients.values():
            if (r.row.status == ACTIVE and r.row.lease_owner == server.incarnation
                    and (held is None or r.row.id in held)):
                r.lease_until = lease_until

    async def list(self) -> list[ServerInfo]:
        return sorted(self.d.servers.values(), key=lambda s: s.name)

    async def request_state(self, name: str, state: str | None) -> ServerInfo:
        current = self.d.servers.get(name.lower())
        if current is None:
            raise NotFoundError(f"The transport server '{name}' has never run with this store")
        updated = dataclasses.replace(current, requested_state=state)
        self.d.servers[name.lower()] = updated
        return updated

    async def active_by_owner(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.d.recipients.values():
            if r.row.status == ACTIVE and r.row.lease_owner is not None:
                out[r.row.lease_owner] = out.get(r.row.lease_owner, 0) + 1
        return out


class MemoryTokens:
    def __init__(self, data: MemoryData, clock: Clock) -> None:
        self.d = data
        self.clock = clock

    async def create(self, name: str, token_hash: str, scope: str) -> AdminToken:
        if name.lower() in self.d.tokens or any(h == token_hash for h, _ in self.d.tokens.values()):
            raise ConflictError(f"A token named '{name}' already exists")
        token = AdminToken(name, scope, self.clock.now())
        self.d.tokens[name.lower()] = (token_hash, token)
        return token

    async def list(self) -> list[AdminToken]:
        return [t for _, t in sorted(self.d.tokens.values(), key=lambda e: e[1].name.lower())]

    async def delete(self, name: str) -> None:
        if self.d.tokens.pop(name.lower(), None) is None:
            raise NotFoundError(f"There is no token named '{name}'")

    async def by_hash(self, token_hash: str) -> AdminToken | None:
        return next((t for h, t in self.d.tokens.values() if h == token_hash), None)


class MemoryDkimKeys:
    def __init__(self, data: MemoryData, clock: Clock) -> None:
        self.d = data
        self.clock = clock

    def _find(self, domain: str) -> tuple[str, dict[str, Any]]:
        key = domain.strip().rstrip(".").lower()
        entry = self.d.dkim.get(key)
        if entry is None:
            raise NotFoundError(f"There is no DKIM signing config for '{domain}'")
        return key, entry

    async def list(self) -> list[DkimConfig]:
        return [from_record(json.loads(e["data"])) for _, e in sorted(self.d.dkim.items())]

    async def get(self, domain: str) -> DkimConfig:
        return from_record(json.loads(self._find(domain)[1]["data"]))

    async def create(self, config: DkimConfig, private_keys: Mapping[str, str]) -> None:
        if config.domain in self.d.dkim:
            raise ConflictError(f"A DKIM signing config for '{config.domain}' already exists")
        self.d.dkim[config.domain] = {"data": json.dumps(to_record(config)), "private_keys": dict(private_keys)}
        self.d.dkim_version += 1

    async def update(self, domain: str, change: Callable[[DkimConfig], DkimConfig],
                     private_keys: Mapping[str, str] | None = None) -> DkimConfig:
        key, entry = self._find(domain)
        updated = change(from_record(json.loads(entry["data"])))
        self.d.dkim[key] = {"data": json.dumps(to_record(updated)),
                            "private_keys": kept_keys(updated, {**entry["private_keys"], **(private_keys or {})})}
        self.d.dkim_version += 1
        return updated

    async def delete(self, domain: str) -> str:
        key, _ = self._find(domain)
        del self.d.dkim[key]
        self.d.dkim_version += 1
        return key

    async def private_keys(self, domain: str) -> dict[str, str]:
        return dict(self._find(domain)[1]["private_keys"])

    async def version(self) -> int:
        return self.d.dkim_version
