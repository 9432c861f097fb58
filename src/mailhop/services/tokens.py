"""Admin API tokens: created once and shown once, stored as SHA-256, listed by name only."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from mailhop.errors import ValidationError
from mailhop.store.base import FULL, SCOPES, AdminToken, Tokens
from mailhop.tracking.log import iso


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Tokens carry 256 random bits: a plain SHA-256 is enough (no salt, no slow hash)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def describe(token: AdminToken) -> dict[str, Any]:
    return {"Name": token.name, "Scope": token.scope, "ReadOnly": token.read_only, "Created": iso(token.created_at)}


class TokenService:
    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens

    async def create(self, name: str, scope: str = FULL) -> dict[str, Any]:
        """The new token's ``Token`` (this is the only time it exists outside the caller), name and rights."""
        if scope not in SCOPES:
            raise ValidationError(f"Scope must be one of {', '.join(SCOPES)}, not '{scope}'")
        secret = new_token()
        made = await self.tokens.create(name, token_hash(secret), scope)
        return {**describe(made), "Token": secret}

    async def list(self) -> list[dict[str, Any]]:
        return [describe(t) for t in await self.tokens.list()]

    async def remove(self, name: str) -> str:
        await self.tokens.delete(name)
        return name
