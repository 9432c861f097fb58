"""Who may use the admin API: bearer tokens, and browser sessions made from them.

Tokens are 32 random bytes (URL-safe base64) printed once by ``mailhop admin token
create``; the store keeps only their SHA-256, which is enough because a token has
256 bits of entropy (no salt or slow hash needed).  A token's scope is full control,
read-only, or submit (``POST /api/messages`` and nothing else: an application's token).  A browser signs in once with a token and gets a session cookie
(HttpOnly, SameSite=Strict) plus a CSRF token that every state-changing request
made with the cookie must echo in ``X-CSRF-Token`` (double submit): another site
can neither read the cookie nor the CSRF token.  Sessions live in the server's
memory and end with it, or when the very token they were opened with is removed
(a new token of the same name does not revive them).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from mailhop.clock import Clock
from mailhop.services.tokens import token_hash
from mailhop.store.base import READ

__all__ = ["Principal", "Sessions", "csrf_ok", "token_hash"]


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    scope: str
    session: str | None = None   # set when the request came with the session cookie
    csrf: str | None = None
    token: str | None = None     # the hash of the token a session was opened with

    @property
    def read_only(self) -> bool:
        return self.scope == READ


class Sessions:
    def __init__(self, lifetime: float, clock: Clock) -> None:
        self.lifetime = lifetime
        self.clock = clock
        self._sessions: dict[str, tuple[Principal, float]] = {}

    def open(self, name: str, scope: str, token: str) -> Principal:
        self._expire()
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        principal = Principal(name, scope, sid, csrf, token)
        self._sessions[sid] = (principal, self.clock.now() + self.lifetime)
        return principal

    def get(self, sid: str) -> Principal | None:
        entry = self._sessions.get(sid)
        if entry is None or entry[1] < self.clock.now():
            self._sessions.pop(sid, None)
            return None
        return entry[0]

    def close(self, sid: str) -> None:
        self._sessions.pop(sid, None)

    def _expire(self) -> None:
        now = self.clock.now()
        for sid, (_, expires) in list(self._sessions.items()):
            if expires < now:
                del self._sessions[sid]


def csrf_ok(principal: Principal, header: str | None) -> bool:
    if principal.session is None:
        return True  # a bearer token is not sent by browsers on their own: no CSRF
    return header is not None and principal.csrf is not None and hmac.compare_digest(header, principal.csrf)
