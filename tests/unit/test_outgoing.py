"""mailhop.smtp.outgoing: what the client writes in DATA, whole or in pieces, is the same and is safe.

Whatever bytes a stored body holds, the wire carries CRLF line ends only, every line that
begins with a dot gets a second one, and the body ends with CRLF.CRLF: so no next hop can
read a bare LF or CR as a line end, and no "<LF>.<LF>" ends DATA early (SMTP smuggling).
"""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from mailhop.smtp.outgoing import DotStuffer, dot_stuff

PIECES = [b"\r", b"\n", b".", b"a", b"\r\n", b"\r\n.", b"\n.", b"\r.", b".\r\n"]
bodies = st.lists(st.sampled_from(PIECES), max_size=30).map(b"".join)


def reference(body: bytes) -> bytes:
    """Line by line: bare CR and bare LF end lines, a leading dot is doubled, CRLF.CRLF ends it."""
    if not body:
        return b".\r\n"
    lines = re.split(rb"\r\n|\r|\n", body)
    if lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines) + b".\r\n"


@given(bodies)
def test_dot_stuff_matches_the_line_by_line_reference(body: bytes) -> None:
    assert dot_stuff(body) == reference(body)


@given(bodies, st.lists(st.integers(min_value=1, max_value=5), min_size=1))
def test_a_body_in_pieces_is_stuffed_exactly_as_the_whole(body: bytes, sizes: list[int]) -> None:
    stuffer = DotStuffer()
    out, pos, i = b"", 0, 0
    while pos < len(body):
        size = sizes[i % len(sizes)]
        out += stuffer.feed(body[pos:pos + size])
        pos, i = pos + size, i + 1
    assert out + stuffer.end() == dot_stuff(body)


@given(bodies)
def test_the_wire_never_carries_a_bare_cr_or_lf_nor_ends_early(body: bytes) -> None:
    wire = dot_stuff(body)
    assert wire.count(b"\r") == wire.count(b"\r\n") == wire.count(b"\n")
    assert wire.endswith(b".\r\n") and b"\r\n.\r\n" not in (b"\r\n" + wire)[:-3]


def test_smuggling_sequences_are_turned_into_harmless_lines() -> None:
    for smuggled in (b"x\n.\nMAIL FROM:<evil>\n", b"x\r.\rMAIL FROM:<evil>\r", b"x\r\n.\rMAIL", b"x\n.\r\nMAIL"):
        wire = b"\r\n" + dot_stuff(smuggled)
        assert wire.count(b"\r\n.\r\n") == 1 and wire.endswith(b"\r\n.\r\n"), wire  # only the real end
        assert b"\r\n..\r\n" in wire, wire  # the smuggled dot is an ordinary, stuffed line
