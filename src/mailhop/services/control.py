"""The control socket: state-changing commands of the CLI, carried out by the running server.

``mailhop serve`` listens on ``<data_dir>/control.sock`` (a Unix socket, mode 0600 in
the server's private data directory: only its own user, and root, may connect).  The
CLI sends one request per connection, a JSON line ``{"op": NAME, "args": {...}}``;
the server answers one JSON line, ``{"result": ...}`` or ``{"error": MESSAGE, "kind":
CLASS}``, calling the same ``Services`` the REST API calls.  So with a server running,
only the server composes NDRs and writes the tracking log; ``call`` returns None when
no server listens, and the CLI then acts on the store itself.

A request line is at most ``MAX_REQUEST`` bytes; anything else that is not a known
operation with its arguments is answered as a ``ValidationError``.  The errors the
caller gets are the ones the service raised (same class, same message).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mailhop import errors
from mailhop.errors import MailhopError, ValidationError
from mailhop.receive.local import LocalSubmission, envelope
from mailhop.services import Services

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
MAX_REQUEST = 64 * 1024 * 1024  # message.submit carries a whole message (mailhop sendmail), in base64
TIMEOUT = 120.0

Operation = Callable[[Services, dict[str, Any]], Awaitable[Any]]

OPERATIONS: dict[str, Operation] = {
    "connector.create": lambda s, a: s.connectors.create(a["values"], a.get("secret"), a["secret_hint"]),
    "connector.update": lambda s, a: s.connectors.update(a["name"], a["values"], a.get("secret")),
    "connector.remove": lambda s, a: s.connectors.remove(a["name"]),
    "queue.retry": lambda s, a: s.queues.retry(a["identity"]),
    "queue.suspend": lambda s, a: s.queues.set_queue_suspended(a["identity"], bool(a["suspended"])),
    "message.suspend": lambda s, a: s.queues.set_message_suspended(int(a["message_id"]), bool(a["suspended"])),
    "message.remove": lambda s, a: s.queues.remove_message(int(a["message_id"]), bool(a["ndr"])),
    "server.request_state": lambda s, a: s.servers.request_state(a["name"], bool(a["draining"])),
    "token.create": lambda s, a: s.tokens.create(a["name"], str(a.get("scope", "full"))),
    "token.remove": lambda s, a: s.tokens.remove(a["name"]),
    "dkim.new": lambda s, a: s.dkim.new(a["domain"], a.get("algorithms"), a.get("key_size"),
                                        a.get("enabled", True), a.get("sub_domains", False)),
    "dkim.show": lambda s, a: s.dkim.show(a["domain"]),
    "dkim.set": lambda s, a: s.dkim.set(a["domain"], a.get("enabled"), a.get("sub_domains")),
    "dkim.rotate": lambda s, a: s.dkim.rotate(a["domain"], a.get("key_size"), bool(a.get("force"))),
    "dkim.remove": lambda s, a: s.dkim.remove(a["domain"]),
    "tls.report_send": lambda s, a: s.tls_reports.send(bool(a.get("now"))),
    "tls.report_list": lambda s, a: s.tls_reports.days(),
    "tls.report_show": lambda s, a: s.tls_reports.show(a["domain"], a.get("date")),
    "message.submit": lambda s, a: _pickup(s).submit_one(
        envelope(str(a["sender"]), [str(r) for r in a["recipients"]], base64.b64decode(a["content"], validate=True)),
        "127.0.0.1", str(a["user"])),
}


def _pickup(services: Services) -> LocalSubmission:
    if services.pickup is None:
        raise errors.StoreError("this server takes no messages from sendmail")
    return services.pickup

_KINDS: dict[str, type[MailhopError]] = {
    cls.__name__: cls for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, MailhopError) and cls is not errors.ConnectionFailure
}


def socket_path(data_dir: Path) -> Path:
    return data_dir / SOCKET_NAME


def _address(path: Path) -> str:
    """AF_UNIX paths are limited to 107 bytes: reach a deep data directory through /proc."""
    text = str(path)
    if len(text.encode()) < 100:
        return text
    fd = os.open(path.parent, os.O_PATH)  # kept open for the process's life; the path stays valid
    return f"/proc/self/fd/{fd}/{path.name}"


class ControlServer:
    def __init__(self, path: Path, services: Services) -> None:
        self.path = path
        self.services = services
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        if self.path.exists():
            if await _answers(self.path):
                raise errors.ConfigError(f"control socket {self.path}: another server runs on this data directory")
            self.path.unlink()
        old = os.umask(0o177)  # the socket is created 0600, never wider even for an instant
        try:
            self._server = await asyncio.start_unix_server(self._serve, _address(self.path), limit=MAX_REQUEST)
        finally:
            os.umask(old)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
        with contextlib.suppress(OSError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), TIMEOUT)
            answer = await self.handle(line)
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, TimeoutError, ValueError):
            pass  # a caller that went away or sent more than a line: nothing to answer
        finally:
            writer.close()

    async def handle(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            op = OPERATIONS.get(str(request.get("op"))) if isinstance(request, dict) else None
            args = request.get("args") if op is not None else None
            if op is None or not isinstance(args, dict):
                raise ValidationError("control socket: not a known operation")
            try:
                return {"result": await op(self.services, args)}
            except MailhopError:
                raise
            except (KeyError, TypeError, ValueError) as exc:
                raise ValidationError(f"control socket: bad arguments for {request['op']}: {exc}") from None
        except MailhopError as exc:
            return {"error": str(exc), "kind": type(exc).__name__}
        except ValueError:
            return {"error": "control socket: the request is not JSON", "kind": "ValidationError"}


async def _answers(path: Path) -> bool:
    try:
        _, writer = await asyncio.open_unix_connection(_address(path))
    except OSError:
        return False
    writer.close()
    return True


async def call(data_dir: Path, op: str, **args: Any) -> tuple[bool, Any]:
    """Ask the server running on ``data_dir`` to do ``op``: (True, result), or (False, None)
    when no server listens there.  A refusal raises the service's own error."""
    path = socket_path(data_dir)
    if not path.exists():
        return False, None
    try:
        reader, writer = await asyncio.open_unix_connection(_address(path), limit=MAX_REQUEST)
    except OSError:  # refused (a stale socket) or gone: no server here
        return False, None
    try:
        writer.write(json.dumps({"op": op, "args": args}).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), TIMEOUT)
    finally:
        writer.close()
    if not line:
        raise errors.StoreError("the running server closed the control socket without an answer")
    answer = json.loads(line)
    if "error" in answer:
        raise _KINDS.get(answer.get("kind", ""), MailhopError)(answer["error"])
    return True, answer["result"]
