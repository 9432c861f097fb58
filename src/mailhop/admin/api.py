"""The admin REST API (FastAPI): the CLI's resources over HTTP, keyed by Exchange's names.

Every route calls the same functions as the ``mailhop`` command (model.connector,
queue.admin, queue.servers, tracking.search, routing, headers.analyzer), so the two
cannot disagree on a rule or a message.  Every request needs a token (``Authorization:
Bearer ...``) or a browser session made from one; read-only tokens may only read;
requests made with the session cookie that change something must carry the session's
``X-CSRF-Token``.  Errors are JSON ``{"detail": "..."}``: 400 invalid input, 401 no
valid token, 403 not allowed, 404 not found, 409 conflict, 503 the store failed.
The OpenAPI document is served at ``/api/openapi.json``, to a token like everything else;
every answer carries a Content-Security-Policy and frame and referrer headers.  What the
route modules share (context, Reader/Writer, errors) is in ``common``; DKIM signing configs
are in ``routes_dkim``, per-domain checks in ``routes_domains``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, FastAPI, Query, Request, Response
from fastapi import Path as ApiPath
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from mailhop.admin import routes_dkim, routes_domains
from mailhop.admin.auth import token_hash
from mailhop.admin.common import (
    COOKIE,
    ERRORS,
    JSON,
    AdminContext,
    Reader,
    Submitter,
    Writer,
    error_response,
    status_of,
)
from mailhop.admin.dashboard import dashboard
from mailhop.errors import (
    AuthenticationRequired,
    MailhopError,
    PermissionDenied,
    StoreError,
    ValidationError,
)
from mailhop.receive import local
from mailhop.store.base import SUBMIT
from mailhop.tracking.log import tracking_dir
from mailhop.tracking.search import Query as TrackQuery
from mailhop.tracking.search import parse_time, search

STATIC = Path(__file__).parent / "static"
# The console is the API's own static files: nothing inline, no other origin, never framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

__all__ = ["AdminContext", "create_app"]

# Request bodies are bounded before anything reads them: FastAPI reads a body whole before the
# token is checked, so without a bound an anonymous client could make the server hold any amount.
MAX_BODY = 4 * 1024 * 1024
MAX_SUBMISSION = 64 * 1024 * 1024  # POST /api/messages: up to 1,000 messages, attachments in base64


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: ``413`` for a body over its route's bound, declared or streamed."""

    def __init__(self, app: Any, limits: dict[tuple[str, str], int], default: int) -> None:
        self.app = app
        self.limits = limits
        self.default = default

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get((scope["method"], scope["path"]), self.default)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(scope, send, limit)
            return
        seen = 0

        async def bounded() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, bounded, send)
        except _TooLarge:
            await self._refuse(scope, send, limit)

    @staticmethod
    async def _refuse(scope: Any, send: Any, limit: int) -> None:
        response = error_response(413, f"the request body is larger than {limit} bytes")
        response.headers.update(SECURITY_HEADERS)
        await response(scope, None, send)  # type: ignore[arg-type]


class Login(BaseModel):
    token: str = Field(min_length=1, max_length=200)


class HeaderText(BaseModel):
    headers: str = Field(min_length=1, max_length=1_000_000)


_MessageId = ApiPath(ge=0, le=2**63 - 1)


def create_app(ctx: AdminContext) -> FastAPI:
    # The OpenAPI document is served by a route of its own below, behind a token like the rest.
    app = FastAPI(title="mailhop admin API", version="1", openapi_url=None, docs_url=None, redoc_url=None)
    app.add_middleware(BodyLimit, limits={("POST", "/api/messages"): MAX_SUBMISSION}, default=MAX_BODY)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.exception_handler(MailhopError)
    async def mailhop_error(request: Request, exc: MailhopError) -> JSONResponse:
        return error_response(status_of(exc), str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = first.get("msg", "invalid request")
        if first.get("type") == "json_invalid" or (
                not where and first.get("type") in ("dict_type", "model_attributes_type")):
            return error_response(400, "the request body must be a JSON object (Content-Type: application/json)")
        return error_response(400, f"{where}: {message}" if where else message)

    app.state.ctx = ctx
    api = "/api"

    # --- session (browser sign-in) ------------------------------------------------------

    @app.post(f"{api}/session", responses=ERRORS, tags=["session"])
    async def sign_in(login: Login, response: Response) -> JSON:
        hashed = token_hash(login.token)
        found = await ctx.store.tokens.by_hash(hashed)
        if found is None:
            raise AuthenticationRequired("This token is not valid")
        if found.scope == SUBMIT:
            raise PermissionDenied(f"The token '{found.name}' may only submit messages: it opens no console")
        session = ctx.sessions.open(found.name, found.scope, hashed)
        response.set_cookie(COOKIE, session.session or "", httponly=True, samesite="strict", path="/",
                            max_age=int(ctx.sessions.lifetime))
        return {"Name": found.name, "Scope": found.scope, "ReadOnly": found.read_only, "CsrfToken": session.csrf}

    @app.get(f"{api}/session", responses=ERRORS, tags=["session"])
    async def whoami(who: Reader) -> JSON:
        return {"Name": who.name, "Scope": who.scope, "ReadOnly": who.read_only, "CsrfToken": who.csrf}

    @app.delete(f"{api}/session", responses=ERRORS, tags=["session"])
    async def sign_out(request: Request, response: Response, who: Reader) -> JSON:
        if who.session:
            ctx.sessions.close(who.session)
        response.delete_cookie(COOKIE, path="/")
        return {"SignedOut": True}

    # --- send connectors ----------------------------------------------------------------

    @app.get(f"{api}/connectors", responses=ERRORS, tags=["send connectors"])
    async def list_connectors(who: Reader) -> list[JSON]:
        return await ctx.services.connectors.list(quarantined=False)

    @app.get(f"{api}/connectors/{{name}}", responses=ERRORS, tags=["send connectors"])
    async def get_connector(name: str, who: Reader) -> JSON:
        return await ctx.services.connectors.get(name)

    @app.post(f"{api}/connectors", status_code=201, responses=ERRORS, tags=["send connectors"])
    async def create_connector(who: Writer, values: Annotated[dict[str, Any], Body()]) -> JSON:
        values = dict(values)
        secret = _secret(values)
        return await ctx.services.connectors.create(values, secret, secret_hint="Password")

    @app.patch(f"{api}/connectors/{{name}}", responses=ERRORS, tags=["send connectors"])
    async def set_connector(name: str, who: Writer, values: Annotated[dict[str, Any], Body()]) -> JSON:
        values = dict(values)
        secret = _secret(values)
        return await ctx.services.connectors.update(name, values, secret)

    @app.delete(f"{api}/connectors/{{name}}", responses=ERRORS, tags=["send connectors"])
    async def remove_connector(name: str, who: Writer) -> JSON:
        return {"Identity": await ctx.services.connectors.remove(name), "Removed": True}

    # --- receive connectors (from the configuration file) -----------------------------------

    @app.get(f"{api}/receive-connectors", responses=ERRORS, tags=["receive connectors"])
    async def receive_connectors(who: Reader) -> list[JSON]:
        return [{
            "Identity": rc.name, "Bindings": [rc.bind], "RemoteIPRanges": rc.remote_ip_ranges,
            "MaxMessageSize": rc.max_message_size, "MaxRecipientsPerMessage": rc.max_recipients_per_message,
            "Fqdn": rc.fqdn or ctx.settings.server.fqdn, "RequireTLS": rc.require_tls,
            "TlsCertificate": str(rc.tls_certificate) if rc.tls_certificate else None,
            "AuthMechanism": "Tls, BasicAuth" if rc.auth and rc.tls_certificate else "None",
            "ProtocolLoggingLevel": rc.protocol_logging_level, "Server": ctx.settings.server.name,
        } for rc in ctx.settings.receive_connectors]

    # --- queues and messages -------------------------------------------------------------------

    @app.get(f"{api}/queues", responses=ERRORS, tags=["queues"])
    async def list_queues(who: Reader) -> list[JSON]:
        return await ctx.services.queues.list_queues()

    @app.post(f"{api}/queues/{{queue}}/retry", responses=ERRORS, tags=["queues"])
    async def retry_queue(queue: str, who: Writer) -> JSON:
        return await ctx.services.queues.retry(queue)

    @app.post(f"{api}/queues/{{queue}}/suspend", responses=ERRORS, tags=["queues"])
    async def suspend_queue(queue: str, who: Writer) -> JSON:
        return {"Identity": await ctx.services.queues.set_queue_suspended(queue, True), "Status": "Suspended"}

    @app.post(f"{api}/queues/{{queue}}/resume", responses=ERRORS, tags=["queues"])
    async def resume_queue(queue: str, who: Writer) -> JSON:
        return {"Identity": await ctx.services.queues.set_queue_suspended(queue, False), "Status": "Ready"}

    @app.get(f"{api}/messages", responses=ERRORS, tags=["queues"])
    async def list_messages(who: Reader, queue: str | None = None,
                            result_size: Annotated[int, Query(ge=1, le=10000)] = 1000) -> list[JSON]:
        return await ctx.services.queues.list_messages(queue, result_size)

    @app.post(f"{api}/messages/{{message_id}}/suspend", responses=ERRORS, tags=["queues"])
    async def suspend_message(message_id: Annotated[int, _MessageId], who: Writer) -> JSON:
        count = await ctx.services.queues.set_message_suspended(message_id, True)
        return {"Identity": message_id, "Status": "Suspended", "Recipients": count}

    @app.post(f"{api}/messages/{{message_id}}/resume", responses=ERRORS, tags=["queues"])
    async def resume_message(message_id: Annotated[int, _MessageId], who: Writer) -> JSON:
        count = await ctx.services.queues.set_message_suspended(message_id, False)
        return {"Identity": message_id, "Status": "Resumed", "Recipients": count}

    @app.delete(f"{api}/messages/{{message_id}}", responses=ERRORS, tags=["queues"])
    async def remove_message(message_id: Annotated[int, _MessageId], who: Writer, ndr: bool = False) -> JSON:
        return await ctx.services.queues.remove_message(message_id, ndr)

    # --- tracking, routing, servers, headers -------------------------------------------------------

    @app.get(f"{api}/tracking", responses=ERRORS, tags=["message trace"])
    async def tracking(
        who: Reader, sender: str | None = None, recipient: str | None = None, message_id: str | None = None,
        internal_message_id: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
        event: str | None = None, subject: str | None = None, start: str | None = None, end: str | None = None,
        result_size: Annotated[int, Query(ge=1, le=10000)] = 1000,
    ) -> list[JSON]:
        query = TrackQuery(sender=sender, recipient=recipient, message_id=message_id,
                           internal_message_id=internal_message_id, event=event, subject=subject,
                           start=parse_time(start, ctx.clock.now()) if start else None,
                           end=parse_time(end, ctx.clock.now()) if end else None,
                           limit=result_size)
        return await asyncio.to_thread(search, tracking_dir(ctx.settings.data_dir), query)

    @app.get(f"{api}/route", responses=ERRORS, tags=["routing"])
    async def route(who: Reader, recipient: Annotated[str, Query(min_length=3, max_length=320)],
                    sender: str = "", size: Annotated[int, Query(ge=0, le=2**40)] = 0) -> JSON:
        return await ctx.services.routing.explain(recipient, sender, size)

    @app.get(f"{api}/servers", responses=ERRORS, tags=["servers"])
    async def list_servers(who: Reader) -> list[JSON]:
        return await ctx.services.servers.list()

    @app.post(f"{api}/servers/{{name}}/drain", responses=ERRORS, tags=["servers"])
    async def drain(name: str, who: Writer) -> JSON:
        return await ctx.services.servers.request_state(name, True)

    @app.post(f"{api}/servers/{{name}}/resume", responses=ERRORS, tags=["servers"])
    async def resume(name: str, who: Writer) -> JSON:
        return await ctx.services.servers.request_state(name, False)

    @app.post(f"{api}/headers/analyze", responses=ERRORS, tags=["header analyzer"])
    async def analyze_headers(body: HeaderText, who: Reader) -> JSON:
        from mailhop.headers.analyzer import analyze

        result: JSON = analyze(body.headers).to_json()
        return result

    # --- submission: an application's messages (full-control or submit tokens) ------------------

    @app.post(f"{api}/messages", status_code=202, tags=["submission"],
              responses={**ERRORS, 202: {"description": "Queued: each message committed before this answer"},
                         413: ERRORS[400] | {"description": "The request body is too large"}},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": local.request_schema()}}}})
    async def submit_messages(request: Request, who: Submitter) -> JSONResponse:
        """Queue messages as SMTP would (stamp, DKIM, routing); 202 after the commit.  One message
        or an array of up to 1,000; one invalid field is a 400 naming it and nothing is queued."""
        submit = ctx.services.http
        if submit is None:
            raise StoreError("this server takes no messages over HTTP")
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise ValidationError("the request body must be JSON: a message object or an array of them") from None
        client = request.client.host if request.client else "127.0.0.1"
        result = await submit.submit(body, client, who.name)
        queued = all(m["Status"] == "Queued" for m in result["Messages"])
        return JSONResponse(result, status_code=202 if queued else 503)

    @app.get(f"{api}/dashboard", responses=ERRORS, tags=["dashboard"])
    async def dashboard_data(who: Reader) -> JSON:
        return await dashboard(ctx.store, ctx.services.queues, tracking_dir(ctx.settings.data_dir), ctx.clock.now())

    # --- DKIM signing configs, sending-domain checks (route modules of their own) ---------------------

    routes_dkim.add_routes(app, ctx, api)
    routes_domains.add_routes(app, ctx, api)

    @app.get(f"{api}/openapi.json", include_in_schema=False)
    async def openapi_document(who: Reader) -> JSONResponse:
        return JSONResponse(app.openapi())

    # --- the web console (static files, no build step) ----------------------------------------------

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console/")

    @app.get("/console/", include_in_schema=False)
    async def console() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/console", StaticFiles(directory=STATIC), name="console")
    _document_errors_as_answered(app)
    return app


def _document_errors_as_answered(app: FastAPI) -> None:
    """FastAPI documents a 422 HTTPValidationError on every route with inputs; this API answers
    invalid input with 400 ``{"detail": ...}`` (in ERRORS on every route), so drop the 422."""
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _secret(values: dict[str, Any]) -> str | None:
    password = values.pop("Password", None)
    if password is None:
        return None
    if not isinstance(password, str) or not password:
        raise ValidationError("Password: must be a non-empty string")
    return password
