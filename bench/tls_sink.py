"""A counting SMTP sink that offers STARTTLS, for the TLS benchmark (bench/tls.py).

``smtp-sink`` (Postfix's) has no TLS. This one answers EHLO with PIPELINING and STARTTLS,
takes every transaction, throws the message away and prints ``mesg=N`` after each one, as
``smtp-sink -c`` does, so bench/run.py's ``Sink`` reads its counter the same way.

    python bench/tls_sink.py HOST PORT CERT KEY
"""

from __future__ import annotations

import asyncio
import ssl
import sys

COUNT = 0
LIMIT = 64 * 1024 * 1024


async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ctx: ssl.SSLContext) -> None:
    global COUNT
    tls = False
    writer.write(b"220 mx.bench.test ESMTP bench sink\r\n")
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                writer.write(b"250-mx.bench.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 104857600\r\n"
                             + (b"" if tls else b"250-STARTTLS\r\n") + b"250 ENHANCEDSTATUSCODES\r\n")
            elif verb == b"STAR" and not tls:
                writer.write(b"220 2.0.0 Ready to start TLS\r\n")
                await writer.drain()
                await writer.start_tls(ctx)
                tls = True
            elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                writer.write(b"250 2.0.0 Ok\r\n")
            elif verb == b"DATA":
                writer.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                await writer.drain()
                data = await reader.readuntil(b"\r\n.\r\n")
                del data
                COUNT += 1
                sys.stdout.write(f"mesg={COUNT}\n")
                sys.stdout.flush()
                writer.write(b"250 2.0.0 Ok: queued\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 2.0.0 Bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"502 5.5.2 Error: command not recognized\r\n")
            if not reader._buffer:  # type: ignore[attr-defined]  # answer pipelined commands together
                await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def main(host: str, port: int, cert: str, key: str) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server = await asyncio.start_server(lambda r, w: session(r, w, ctx), host, port, limit=LIMIT, backlog=512)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]))
