"""Bodies as delivery sends them: at hand in memory, or read from the store a part at a time.

A message up to one part (``PART_SIZE``) is loaded whole and kept with its claim, so an
NDR needs no second read; a larger one is a ``StoredBody`` that the SMTP client reads
part by part while it writes DATA, so the size of a message never decides how much
memory a delivery takes.  ``without_internal_headers`` drops the organization's
internal header fields (Exchange's header firewall) from either kind; for a stored
body that is done on its first part, which holds the header block (the receive side
refuses header blocks that do not end within the first MiB).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from mailhop.headers import block
from mailhop.smtp.outgoing import Body, BodyStream

__all__ = ["Body", "StoredBody", "without_internal_headers"]
from mailhop.store.base import Messages


class StoredBody:
    def __init__(self, messages: Messages, message_id: int, size: int) -> None:
        self.messages = messages
        self.message_id = message_id
        self.size = size

    def chunks(self) -> AsyncIterator[bytes]:
        return self.messages.body_parts(self.message_id)


class _Stripped:
    def __init__(self, body: BodyStream) -> None:
        self.body = body
        self.size = body.size

    async def chunks(self) -> AsyncIterator[bytes]:
        first = True
        async for part in self.body.chunks():
            yield block.strip_internal(part) if first else part
            first = False


def without_internal_headers(body: Body) -> Body:
    if isinstance(body, bytes):
        return block.strip_internal(body)
    return _Stripped(body)
