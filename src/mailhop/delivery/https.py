"""One HTTPS request to a named host at a known address, with h11 over asyncio streams.

For the MTA-STS policy fetch and the TLS-RPT report upload: the caller resolves the name
through the delivery resolver (so ``[dns] nameservers`` decides where a host is), gives the
TLS context (which validates the certificate for ``host``), and gets the status and a body of
at most ``limit`` bytes.  No redirect is followed.  ``HttpsError`` says why not, with ``kind``
``connect``, ``certificate``, ``protocol`` or ``too-large``.
"""

from __future__ import annotations

import asyncio
import ssl

import h11

from mailhop.errors import MailhopError


class HttpsError(MailhopError):
    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


async def request(host: str, ip: str, port: int, context: ssl.SSLContext, method: str, path: str,
                  headers: list[tuple[str, str]], body: bytes = b"", limit: int = 64 * 1024) -> tuple[int, bytes]:
    """(status, body) of one request; HttpsError on any failure (the caller bounds the time)."""
    try:
        reader, writer = await asyncio.open_connection(ip, port, ssl=context, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        raise HttpsError(f"{host} ({ip}): certificate not valid: {exc.verify_message}", "certificate") from None
    except (OSError, ssl.SSLError) as exc:
        raise HttpsError(f"{host} ({ip}): {exc}", "connect") from None
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=16 * 1024)
    status = 0
    received = bytearray()
    try:
        head = [("Host", host), ("User-Agent", "mailhop"), ("Connection", "close"), *headers]
        if body or method != "GET":
            head.append(("Content-Length", str(len(body))))
        writer.write(conn.send(h11.Request(method=method, target=path, headers=head)))
        if body:
            writer.write(conn.send(h11.Data(data=body)))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(16384))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                received += event.data
                if len(received) > limit:
                    raise HttpsError(f"the answer of {host} is larger than {limit // 1024} KB", "too-large")
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
    except h11.ProtocolError as exc:
        raise HttpsError(f"{host} ({ip}): bad HTTP response: {exc}", "protocol") from None
    except (OSError, ssl.SSLError) as exc:
        raise HttpsError(f"{host} ({ip}): {exc}", "connect") from None
    finally:
        writer.close()
    return status, bytes(received)
