"""A hostile SMTP next hop on loopback: it answers each command with whatever bytes a test scripts.

``HostileServer(script)``: ``script`` maps a command's first word (``EHLO``, ``MAIL``,
``STARTTLS``, ...) to the raw bytes written back, or to a callable returning them; the
greeting is ``script["GREETING"]``.  After the bytes for ``STARTTLS`` the server takes the
TLS handshake (``tls`` context) as a real one would, so whatever it appended before is
exactly what a man in the middle could have injected.  Commands it was not scripted for
get ``250 2.0.0 ok``; DATA gets ``script.get("DATA", "354 ...")`` and, after a 354, its
content is read up to the terminator and answered with ``script.get("DOT", ...)``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

Answer = bytes | Callable[[bytes], bytes]


@dataclass
class HostileServer:
    script: dict[str, Answer]
    tls: ssl.SSLContext | None = None
    commands: list[bytes] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> HostileServer:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0, limit=1 << 20)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _answer(self, key: str, line: bytes, default: bytes) -> bytes:
        answer = self.script.get(key, default)
        return answer(line) if callable(answer) else answer

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            writer.write(self._answer("GREETING", b"", b"220 hostile.test ESMTP\r\n"))
            while line := await reader.readline():
                self.commands.append(line)
                verb = line.split(b" ", 1)[0].strip().upper().decode("ascii", "replace")
                if verb == "DATA":
                    start = self._answer("DATA", line, b"354 go ahead\r\n")
                    writer.write(start)
                    await writer.drain()
                    if not start.startswith(b"354"):
                        continue
                    while (chunk := await reader.readline()) and chunk != b".\r\n":
                        pass
                    writer.write(self._answer("DOT", line, b"250 2.0.0 ok\r\n"))
                elif verb == "QUIT":
                    writer.write(b"221 2.0.0 bye\r\n")
                    await writer.drain()
                    break
                else:
                    writer.write(self._answer(verb, line, b"250 2.0.0 ok\r\n"))
                await writer.drain()
                if verb == "STARTTLS" and self.tls is not None:
                    await writer.start_tls(self.tls)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
