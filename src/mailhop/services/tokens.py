"""Admin API tokens: created once and shown once, stored as SHA-256, listed by name only."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from mailhop.store.base import Tokens
from mailhop.tracking.log import iso


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Tokens carry 256 random bits: a plain SHA-256 is enough (no salt, no slow hash)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenService:
    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens

    async def create(self, name: str, read_only: bool) -> dict[str, Any]:
        """The new token's ``Token`` (this is the only time it exists outside the caller), name and rights."""
        secret = new_token()
        made = await self.tokens.create(name, token_hash(secret), read_only)
        return {"Name": made.name, "ReadOnly": made.read_only, "Created": iso(made.created_at), "Token": secret}

    async def list(self) -> list[dict[str, Any]]:
        return [{"Name": t.name, "ReadOnly": t.read_only, "Created": iso(t.created_at)}
                for t in await self.tokens.list()]

    async def remove(self, name: str) -> str:
        await self.tokens.delete(name)
        return name
