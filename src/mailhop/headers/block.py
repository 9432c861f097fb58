"""Read the header block of a message without parsing its body.

Works on raw bytes with CRLF line ends (what the SMTP server stores).  Folded
headers are unfolded; values are returned raw (RFC 2047 words undecoded) unless
``decoded`` is asked for.  Never raises on malformed input: a line that is not a
header ends the block, as in RFC 5322 parsers that recover.
"""

from __future__ import annotations

import datetime as dt
import email.header
import email.utils
import functools
import re

_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:")


def split(message: bytes) -> tuple[bytes, bytes]:
    """(header block including its final CRLF, body after the blank line)."""
    if message.startswith(b"\r\n"):
        return b"", message[2:]
    end = message.find(b"\r\n\r\n")
    if end < 0:
        return message, b""
    return message[: end + 2], message[end + 4 :]


def fields(header_block: bytes) -> list[tuple[str, str]]:
    """[(name, unfolded raw value)] in order."""
    out: list[tuple[str, str]] = []
    for line in header_block.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and out:
            name, value = out[-1]
            out[-1] = (name, value + " " + line.strip().decode("utf-8", "replace"))
            continue
        m = _NAME.match(line)
        if not m:
            break
        out.append((m.group(1).decode("ascii"), line[m.end():].strip().decode("utf-8", "replace")))
    return out


def first(pairs: list[tuple[str, str]], name: str) -> str | None:
    lname = name.lower()
    for key, value in pairs:
        if key.lower() == lname:
            return value
    return None


def count(pairs: list[tuple[str, str]], name: str) -> int:
    lname = name.lower()
    return sum(1 for key, _ in pairs if key.lower() == lname)


def decoded(value: str) -> str:
    """Decode RFC 2047 encoded words; the raw value when that fails."""
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        return value


@functools.lru_cache(maxsize=4)
def _format_second(second: int) -> str:
    return email.utils.format_datetime(dt.datetime.fromtimestamp(second, dt.UTC))


def format_date(ts: float) -> str:
    """An RFC 5322 date in UTC with a numeric zone: ``Sat, 28 Nov 2026 02:24:23 +0000``.

    Made once a second (every message of that second shares it)."""
    return _format_second(int(ts))


# Headers that belong to the organization and do not leave it (Exchange's header
# firewall), unless the connector has CloudServicesMailEnabled.
INTERNAL_PREFIXES = (
    b"x-ms-exchange-organization-", b"x-ms-exchange-forest-", b"x-ms-exchange-crosspremises-",
    b"x-mailhop-internal-",
)


def strip_internal(message: bytes) -> bytes:
    """Remove the organization's internal header fields (and their folded lines) from the header block."""
    return drop_fields(message, INTERNAL_PREFIXES)


def drop_fields(message: bytes, prefixes: tuple[bytes, ...]) -> bytes:
    """Remove the header fields whose lowercased line starts with one of ``prefixes`` (``b"bcc:"``),
    with their folded lines."""
    headers, body = split(message)
    lowered = headers.lower()
    if not any(p in lowered for p in prefixes):
        return message
    kept: list[bytes] = []
    dropping = False
    for line in headers.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = line.lower().startswith(prefixes)
        if not dropping:
            kept.append(line)
    new_headers = b"\r\n".join(kept)
    if b"\r\n\r\n" not in message:
        return new_headers
    return new_headers.rstrip(b"\r\n") + b"\r\n\r\n" + body
