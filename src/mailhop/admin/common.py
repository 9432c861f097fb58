"""What every route module of the admin API shares: its context, who may call, how errors look.

``Reader`` lets any valid token or session in but submit-only tokens; ``Writer`` refuses
read-only ones too, and session requests without the session's ``X-CSRF-Token``;
``Submitter`` lets full-control and submit tokens in (``POST /api/messages``).  Both raise MailhopError
subclasses, which ``status_of`` maps to the HTTP status the API answers (400 for every
other error of the package); ``error_response`` is the one ``{"detail": "..."}`` body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from mailhop.admin.auth import Principal, Sessions, csrf_ok, token_hash
from mailhop.clock import Clock
from mailhop.config import Settings
from mailhop.errors import (
    AuthenticationRequired,
    ConflictError,
    MailhopError,
    NotFoundError,
    PermissionDenied,
    StoreError,
)
from mailhop.services import Services
from mailhop.store.base import FULL, SUBMIT, Store

COOKIE = "mailhop_session"
JSON = dict[str, Any]


class ErrorBody(BaseModel):
    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in ((400, "Invalid input"), (401, "No valid token"), (403, "Not allowed"),
                       (404, "Not found"), (409, "Conflict"), (503, "The store failed"))
}


@dataclass
class AdminContext:
    settings: Settings
    services: Services
    store: Store
    sessions: Sessions
    clock: Clock


def status_of(exc: MailhopError) -> int:
    if isinstance(exc, AuthenticationRequired):
        return 401
    if isinstance(exc, PermissionDenied):
        return 403
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, StoreError):
        return 503
    return 400


def error_response(status: int, detail: str) -> JSONResponse:
    # A message may quote the request's own text, lone surrogates included: escape what is not Unicode.
    return JSONResponse({"detail": detail.encode("utf-8", "backslashreplace").decode("utf-8")}, status_code=status)


async def principal(request: Request) -> Principal:
    ctx: AdminContext = request.app.state.ctx
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        found = await ctx.store.tokens.by_hash(token_hash(header[7:].strip()))
        if found is not None:
            return Principal(found.name, found.scope)
    sid = request.cookies.get(COOKIE)
    if sid:
        session = ctx.sessions.get(sid)
        # A session lives only as long as the token it was opened with (not one of the same name).
        if session is not None and session.token and await ctx.store.tokens.by_hash(session.token) is not None:
            return session
    raise AuthenticationRequired("A valid token is required (Authorization: Bearer <token>)")


async def reader(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if who.scope == SUBMIT:
        raise PermissionDenied(f"The token '{who.name}' may only submit messages (POST /api/messages)")
    return who


async def writer(request: Request, who: Annotated[Principal, Depends(principal)]) -> Principal:
    if who.scope != FULL:
        raise PermissionDenied(f"The token '{who.name}' is " + ("read-only" if who.read_only else
                                                               "for submitting messages only"))
    if not csrf_ok(who, request.headers.get("x-csrf-token")):
        raise PermissionDenied("Missing or wrong X-CSRF-Token for this session")
    return who


async def submitter(request: Request, who: Annotated[Principal, Depends(principal)]) -> Principal:
    if who.scope not in (FULL, SUBMIT):
        raise PermissionDenied(f"The token '{who.name}' is read-only")
    if not csrf_ok(who, request.headers.get("x-csrf-token")):
        raise PermissionDenied("Missing or wrong X-CSRF-Token for this session")
    return who


Reader = Annotated[Principal, Depends(reader)]
Writer = Annotated[Principal, Depends(writer)]
Submitter = Annotated[Principal, Depends(submitter)]
