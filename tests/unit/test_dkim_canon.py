"""The streaming relaxed body hash and the header canonicalization, held against dkimpy's.

dkimpy canonicalizes a whole body at once (``dkim.canonicalization.Relaxed``); the
code under test sees the body in arbitrary chunks, so hypothesis draws bodies from
the characters that matter (SP, HTAB, CRLF, text) and cuts them at random places.
"""

from __future__ import annotations

import hashlib

import pytest
from dkim.canonicalization import Relaxed
from hypothesis import given, settings
from hypothesis import strategies as st

from mailhop.dkim import canon
from mailhop.dkim.canon import MessageHash, RelaxedBodyHash, header_fields, relaxed_header
from mailhop.headers import block

PIECES = st.sampled_from([b" ", b"\t", b"\r\n", b"a", b"b ", b"  ", b" \t ", b"\r\n\r\n", b".", b"x\t"])
BODIES = st.lists(PIECES, max_size=60).map(b"".join)


def reference(body: bytes) -> bytes:
    return hashlib.sha256(Relaxed.canonicalize_body(body)).digest()


def streamed(body: bytes, cuts: list[int]) -> bytes:
    h = RelaxedBodyHash()
    last = 0
    for cut in sorted(c % (len(body) + 1) for c in cuts):
        h.update(body[last:cut])
        last = cut
    h.update(body[last:])
    return h.digest()


@settings(max_examples=400, deadline=None)
@given(BODIES, st.lists(st.integers(min_value=0, max_value=10_000), max_size=8))
def test_streamed_body_hash_equals_dkimpys_whatever_the_chunks(body: bytes, cuts: list[int]) -> None:
    assert streamed(body, cuts) == reference(body)


@settings(max_examples=100, deadline=None)
@given(BODIES, st.lists(st.integers(min_value=0, max_value=10_000), max_size=8))
def test_long_lines_are_hashed_in_pieces_with_the_same_result(body: bytes, cuts: list[int]) -> None:
    original = canon.LINE_CHUNK
    canon.LINE_CHUNK = 3  # every line is "long": the partial-line path runs on every update
    try:
        assert streamed(body, cuts) == reference(body)
    finally:
        canon.LINE_CHUNK = original


@pytest.mark.parametrize("body", [b"", b"\r\n", b"\r\n\r\n", b"a", b"a \t", b" \r\n \r\n", b"a\r\n\r\n b \r\n"])
def test_edge_bodies(body: bytes) -> None:
    assert streamed(body, []) == reference(body)
    assert streamed(body, list(range(len(body)))) == reference(body)  # one byte at a time


def test_a_long_line_does_not_stay_in_memory() -> None:
    h = RelaxedBodyHash()
    for _ in range(100):
        h.update(b"word " * 10_000)  # 5 MB without a line end
        assert len(h._rest) <= canon.LINE_CHUNK + 50_000
    h.update(b"\r\n")
    assert h.digest() == reference(b"word " * 1_000_000 + b"\r\n")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"Subject: x\r\n", b"To: a\r\n", b"\r\n", b" folded\r\n"]), max_size=6).map(b"".join),
       BODIES, st.lists(st.integers(min_value=0, max_value=10_000), max_size=6))
def test_message_hash_skips_the_header_block_as_headers_block_split_does(
        head: bytes, body: bytes, cuts: list[int]) -> None:
    message = head + body
    h = MessageHash()
    last = 0
    for cut in sorted(c % (len(message) + 1) for c in cuts):
        h.update(message[last:cut])
        last = cut
    h.update(message[last:])
    assert h.digest() == reference(block.split(message)[1])


def test_header_fields_keep_folding_and_relaxed_form_matches_dkimpy() -> None:
    header = (b"Subject:  Hello \t  there\r\n\t  folded  \r\nFROM : A <a@contoso.test>\r\n"
              b"X-Empty:\r\nTo: b@fabrikam.test\r\n")
    fields = header_fields(header)
    assert [n for n, _ in fields] == ["subject", "from", "x-empty", "to"]
    assert fields[0][1] == b"Subject:  Hello \t  there\r\n\t  folded  "
    ours = [relaxed_header(raw) for _, raw in fields]
    theirs = [n + b":" + v for n, v in Relaxed.canonicalize_headers(
        [(raw.split(b":", 1)[0], raw.split(b":", 1)[1] + b"\r\n") for _, raw in fields])]
    assert [o + b"\r\n" for o in ours] == [t for t in theirs]
