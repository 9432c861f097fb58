"""The server's listening sockets, bound before anything is served: a listener that cannot be
opened stops ``mailhop serve`` with one line naming it and why, before any connection is taken.

``bind`` opens a TCP socket (``ConfigError`` naming the listener on failure: the address in
use, not this machine's, no permission); ``server_tls_context`` and ``admin_tls_context`` load
a listener's certificate (``ConfigError`` when it cannot be read or does not match its key).
``mailhop serve --check`` (``preflight``) calls the same functions.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

from mailhop.config import AdminSettings, ReceiveConnectorSettings, split_hostport
from mailhop.errors import ConfigError


def bind(what: str, address: str, reuse_port: bool = False, backlog: int = 1024) -> socket.socket:
    host, port = split_hostport(address)
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, sockaddr = infos[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, IndexError) as exc:
        raise ConfigError(f"{what} cannot listen on {address}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"{what} cannot listen on {address}: {exc.strerror or exc}") from None
    return sock


def _load(context: ssl.SSLContext, what: str, certificate: Path, key: Path) -> None:
    try:
        context.load_cert_chain(str(certificate), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{what}: tls_certificate/tls_key cannot be loaded: {exc}") from None


def server_tls_context(rc: ReceiveConnectorSettings) -> ssl.SSLContext | None:
    if rc.tls_certificate is None or rc.tls_key is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load(ctx, f"receive connector '{rc.name}'", rc.tls_certificate, rc.tls_key)
    return ctx


def admin_tls_context(admin: AdminSettings) -> ssl.SSLContext | None:
    if admin.tls_certificate is None or admin.tls_key is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load(ctx, "the admin API", admin.tls_certificate, admin.tls_key)
    return ctx
