"""Replies for what went wrong at an endpoint: socket, TLS and protocol errors named for administrators.

The SMTP client turns every library exception into one of these replies (always 4xx:
a failure of the path, never of the recipient), worded as Exchange words its
LastError texts where Exchange has one.
"""

from __future__ import annotations

import asyncio
import ssl

from mailhop.errors import ProtocolError
from mailhop.outcome import Reply


def ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def tls_error_reply(exc: BaseException, host: str, ip: str, port: int) -> Reply:
    """Name the TLS failure's cause: untrusted chain, expired, revoked, or the handshake itself."""
    where = f"{host} ({ip}:{port})" if host != ip else f"{ip}:{port}"
    cause = ssl_cause(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        code = cause.verify_code
        message = cause.verify_message or str(cause)
        if code == 10:
            what = "has expired"
        elif code == 9:
            what = "is not yet valid"
        elif code == 23:
            what = "has been revoked"
        elif code in (2, 18, 19, 20, 21):
            what = f"is not trusted ({message})"
        else:
            what = f"failed verification ({message})"
        return Reply(451, "4.4.0", f"TLS certificate of {where} {what}")
    if cause is not None:
        return Reply(451, "4.4.0", f"TLS negotiation with {where} failed: {cause.reason or cause}")
    if isinstance(exc, TimeoutError):
        return Reply(451, "4.4.0", f"TLS negotiation with {where} timed out")
    return Reply(451, "4.4.0", f"TLS negotiation with {where} failed: {exc or type(exc).__name__}")


def connection_error_reply(exc: BaseException, host: str, ip: str, port: int) -> Reply:
    where = f"{host} ({ip}:{port})" if host != ip else f"{ip}:{port}"
    if isinstance(exc, TimeoutError):
        return Reply(441, "4.4.1", f"Connection timed out connecting to {where}")
    if ssl_cause(exc) is not None:
        return tls_error_reply(exc, host, ip, port)
    if isinstance(exc, ConnectionRefusedError):
        return Reply(441, "4.4.1", f"Failed to connect to {where}: connection refused")
    if isinstance(exc, ProtocolError | asyncio.IncompleteReadError | ConnectionError):
        return Reply(451, "4.4.0", f"{where} closed the connection: {exc or type(exc).__name__}")
    return Reply(441, "4.4.1", f"Failed to connect to {where}: {exc}")


def transaction_error_reply(exc: BaseException) -> Reply:
    if isinstance(exc, TimeoutError):
        return Reply(421, "4.4.2", "Connection dropped due to TimedOut")
    if ssl_cause(exc) is not None:
        return Reply(451, "4.4.0", f"TLS error during the transaction: {ssl_cause(exc)}")
    if isinstance(exc, ProtocolError | ConnectionError | asyncio.IncompleteReadError):
        return Reply(451, "4.4.0", "SMTPSEND.SuspiciousRemoteServerError; remote server disconnected abruptly")
    return Reply(451, "4.4.0", f"SMTPSEND.SendingError; Error while sending message: {exc}")
