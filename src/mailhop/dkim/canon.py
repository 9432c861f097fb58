"""DKIM's relaxed canonicalization (RFC 6376 section 3.4), the body's as it streams in.

dkimpy canonicalizes and hashes a body it holds whole in memory; a message here is
spooled as it arrives and never has to fit in memory (``receive.spool``), so the body
hash is computed here, chunk by chunk, while the spool is written: ``MessageHash``
skips the header block and feeds the body to ``RelaxedBodyHash``.  The header side
(``relaxed_header``) works on the header block, which is always in memory.  The tests
hold both against dkimpy's canonicalization (tests/unit/test_dkim_canon.py) and the
signatures against OpenDKIM and dkimpy as verifiers.

Input is what the SMTP server stores: CRLF line ends (bare CR and LF were made CRLF).
Memory is bounded whatever the input: a line longer than ``LINE_CHUNK`` is hashed in
pieces.
"""

from __future__ import annotations

import hashlib
import re

# WSP that relaxed canonicalization changes: a tab, or a space with more WSP after it.  A
# lone space stays as it is, so ordinary text (one space between words) matches nothing;
# ``[ \t]+`` would replace every single space by itself, 5 times slower on prose.
_WSP_RUN = re.compile(rb"\t[ \t]*| [ \t]+")
_WSP_EOL = re.compile(rb"[ \t]+\r\n")
_HEADER_END = b"\r\n\r\n"
LINE_CHUNK = 64 * 1024


def _relaxed_lines(data: bytes) -> bytes:
    """Whole lines in relaxed form.  Most text has no tab, no two spaces in a row and no
    space before a line end, and is then its own relaxed form: the regular expressions
    (which try a match at every space) run only when something is to change."""
    if b"\t" in data or b"  " in data or b" \r\n" in data:
        return _WSP_RUN.sub(b" ", _WSP_EOL.sub(b"\r\n", data))
    return data


class RelaxedBodyHash:
    """SHA-256 of the relaxed canonical body: WSP runs made one SP, WSP at line ends
    removed, empty lines at the end removed, a CRLF after a last line that lacks one;
    an empty body hashes as nothing at all (RFC 6376 errata 3133)."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self._rest = b""          # the current line, not yet ended
        self._empty_lines = 0     # empty lines held back: they count only if content follows
        self._line_open = False   # part of the current line is hashed already (a very long line)

    def _emit(self, data: bytes) -> None:
        if self._empty_lines:
            self._sha.update(b"\r\n" * self._empty_lines)
            self._empty_lines = 0
        self._sha.update(data)

    def update(self, data: bytes) -> None:
        buf = self._rest + data if self._rest else data
        cut = buf.rfind(b"\r\n")
        if cut < 0:
            self._rest = buf
            if len(buf) > LINE_CHUNK:
                self._hash_part_of_line()
            return
        self._rest = buf[cut + 2:]
        lines = _relaxed_lines(buf[:cut + 2])
        if self._line_open:  # the first CRLF ends a line whose start is hashed: not an empty line
            end = lines.find(b"\r\n") + 2
            self._sha.update(lines[:end])
            self._line_open = False
            lines = lines[end:]
        content = len(lines)
        while content >= 2 and lines[content - 2:content] == b"\r\n":
            content -= 2
        crlfs = (len(lines) - content) // 2
        if content == 0:
            self._empty_lines += crlfs
            return
        self._emit(lines[:content] + b"\r\n")
        self._empty_lines = crlfs - 1

    def _hash_part_of_line(self) -> None:
        """Hash the long current line up to its last byte that is neither WSP nor CR: a WSP
        run (or a CR whose LF is still to come) at its end must wait for what follows."""
        rest = self._rest
        keep = len(rest) - len(rest.rstrip(b" \t\r"))
        part = rest[:len(rest) - keep]
        if not part:
            self._rest = b" " + rest.lstrip(b" \t") if rest[:1] in (b" ", b"\t") else rest
            return
        self._emit(_WSP_RUN.sub(b" ", part))
        self._line_open = True
        self._rest = rest[len(part):]

    def digest(self) -> bytes:
        # A last line without CRLF (never from SMTP, whose DATA ends with one) is taken as
        # dkimpy takes it: its WSP compressed but kept, and a CRLF added.
        last = _WSP_RUN.sub(b" ", self._rest)
        if last or self._line_open:
            if last:
                self._emit(last)
            self._sha.update(b"\r\n")
        self._rest, self._line_open = b"", False
        return self._sha.digest()


class MessageHash:
    """The relaxed body hash of a whole message fed in chunks: the header block (up to and
    including the empty line that ends it) is skipped; a message without one has an empty body."""

    def __init__(self) -> None:
        self.body = RelaxedBodyHash()
        self._in_body = False
        # The last bytes of the header block so far, as its end may span chunks.  It starts as
        # a CRLF, so that a message that begins with the empty line (no header fields at all,
        # ``headers.block.split``'s reading) has its body right after that line.
        self._tail = b"\r\n"

    def update(self, data: bytes) -> None:
        if self._in_body:
            self.body.update(data)
            return
        window = self._tail + data
        end = window.find(_HEADER_END)
        if end < 0:
            self._tail = window[-3:]
            return
        self._in_body = True
        if end + 4 < len(window):
            self.body.update(window[end + 4:])

    def digest(self) -> bytes:
        return self.body.digest()


def body_hash(message: bytes) -> bytes:
    """The relaxed body hash of a message held in memory (NDRs, DSNs)."""
    h = MessageHash()
    h.update(message)
    return h.digest()


def header_fields(header_block: bytes) -> list[tuple[str, bytes]]:
    """[(lower-case name, the whole raw field with its folded lines)] in order."""
    out: list[tuple[str, bytes]] = []
    for line in header_block.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and out:
            name, raw = out[-1]
            out[-1] = (name, raw + b"\r\n" + line)
            continue
        colon = line.find(b":")
        if colon <= 0:
            break
        out.append((line[:colon].strip().decode("ascii", "replace").lower(), line))
    return out


def relaxed_header(raw: bytes) -> bytes:
    """One header field in relaxed form, without its CRLF: ``name:value`` (RFC 6376 3.4.2)."""
    name, _, value = raw.partition(b":")
    value = _WSP_RUN.sub(b" ", value.replace(b"\r\n", b"")).strip(b" ")
    return name.strip(b" \t").lower() + b":" + value
