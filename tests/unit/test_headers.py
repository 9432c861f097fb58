"""mailhop.headers.block and mailhop.receive.stamp: reading and stamping the header block."""

from __future__ import annotations

import email
import email.policy
import email.utils
import re

import pytest

from mailhop.headers import block
from mailhop.receive import stamp
from mailhop.smtp.server import Session, TlsInfo

EPOCH_DATE = "Thu, 01 Jan 1970 00:00:00 +0000"
NOW = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 +0000
NOW_DATE = "Tue, 14 Nov 2023 22:13:20 +0000"

MESSAGE = (
    b"From: alice@contoso.com\r\n"
    b"To: bob@fabrikam.com\r\n"
    b"Subject: hello\r\n"
    b" folded world\r\n"
    b"X-Test:\tvalue\r\n"
    b"\r\n"
    b"body line 1\r\n"
    b"\r\n"
    b"body line 3\r\n"
)


# --- block.split / fields / first / count -------------------------------------------------


@pytest.mark.parametrize(
    ("message", "headers", "body"),
    [
        (MESSAGE, MESSAGE[: MESSAGE.index(b"\r\n\r\n") + 2], b"body line 1\r\n\r\nbody line 3\r\n"),
        (b"Subject: x\r\n\r\n", b"Subject: x\r\n", b""),
        (b"Subject: x\r\n", b"Subject: x\r\n", b""),  # headers only
        (b"\r\nbody\r\n", b"", b"body\r\n"),  # no headers at all
        (b"", b"", b""),
    ],
)
def test_split(message: bytes, headers: bytes, body: bytes) -> None:
    assert block.split(message) == (headers, body)


def test_fields_unfolds_and_keeps_order() -> None:
    headers, _ = block.split(MESSAGE)
    assert block.fields(headers) == [
        ("From", "alice@contoso.com"),
        ("To", "bob@fabrikam.com"),
        ("Subject", "hello folded world"),
        ("X-Test", "value"),
    ]


@pytest.mark.parametrize(
    ("header_block", "pairs"),
    [
        (b"A: 1\r\nnot a header\r\nB: 2\r\n", [("A", "1")]),  # a non-header line ends the block
        (b" leading continuation\r\nA: 1\r\n", []),
        (b"A : spaced\r\n", [("A", "spaced")]),
        (b"A:\r\n", [("A", "")]),
        (b"A: 1\r\n\tcont\r\n  more\r\n", [("A", "1 cont more")]),
        (b"Subject: caf\xc3\xa9\r\n", [("Subject", "café")]),
        (b"Subject: \xff\r\n", [("Subject", "\ufffd")]),
    ],
)
def test_fields_recovers_from_malformed_input(header_block: bytes, pairs: list[tuple[str, str]]) -> None:
    assert block.fields(header_block) == pairs


@pytest.mark.parametrize(
    ("name", "first", "count"),
    [("received", "from a", 2), ("RECEIVED", "from a", 2), ("Subject", "s", 1), ("Date", None, 0)],
)
def test_first_and_count_ignore_case(name: str, first: str | None, count: int) -> None:
    pairs = block.fields(b"Received: from a\r\nSubject: s\r\nreceived: from b\r\n")
    assert block.first(pairs, name) == first
    assert block.count(pairs, name) == count


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("=?utf-8?q?caf=C3=A9?=", "café"),
        ("=?UTF-8?B?w6l0w6k=?=", "été"),
        ("plain text", "plain text"),
        ("=?bogus-charset?q?x?=", "=?bogus-charset?q?x?="),  # undecodable: the raw value
    ],
)
def test_decoded(raw: str, text: str) -> None:
    assert block.decoded(raw) == text


@pytest.mark.parametrize(
    ("ts", "text"),
    [(0, EPOCH_DATE), (NOW, NOW_DATE), (NOW + 0.9, NOW_DATE)],
)
def test_format_date_is_rfc5322_utc(ts: float, text: str) -> None:
    assert block.format_date(ts) == text


# --- receive.stamp.received ---------------------------------------------------------------


def session(**kw: object) -> Session:
    values: dict[str, object] = {
        "peer_ip": "192.0.2.10",
        "peer_port": 40000,
        "local_ip": "192.0.2.1",
        "local_port": 25,
        "helo": "client.contoso.com",
        "esmtp": True,
    }
    values.update(kw)
    return Session(**values)  # type: ignore[arg-type]


TLS = TlsInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", 256)


@pytest.mark.parametrize(
    ("kw", "protocol"),
    [
        ({"esmtp": False}, "SMTP"),
        ({}, "ESMTP"),
        ({"tls": TLS}, "ESMTPS"),
        ({"auth_user": "bob"}, "ESMTPA"),
        ({"tls": TLS, "auth_user": "bob"}, "ESMTPSA"),
    ],
)
def test_received_with_protocol(kw: dict[str, object], protocol: str) -> None:
    line = stamp.received(session(**kw), "mx.contoso.com", 42, ["bob@fabrikam.com"], NOW).decode()
    [(name, value)] = block.fields(line.encode())
    assert name == "Received"
    assert re.search(rf"\bwith {protocol}\b", value)


def test_received_single_recipient_form() -> None:
    raw = stamp.received(session(), "mx.contoso.com", 42, ["bob@fabrikam.com"], NOW)
    assert raw == (
        b"Received: from client.contoso.com ([192.0.2.10])\r\n"
        b"\tby mx.contoso.com (mailhop)\r\n"
        b"\twith ESMTP\r\n"
        b"\tid 42\r\n"
        b"\tfor <bob@fabrikam.com>; " + NOW_DATE.encode() + b"\r\n"
    )


def test_received_with_tls_auth_and_several_recipients() -> None:
    raw = stamp.received(
        session(tls=TLS, auth_user="alice"), "mx.contoso.com", 7, ["a@x.example", "b@x.example"], NOW
    )
    [(name, value)] = block.fields(raw)
    assert name == "Received"
    assert value == (
        "from client.contoso.com ([192.0.2.10]) by mx.contoso.com (mailhop) "
        "with ESMTPSA (using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)) "
        f"(authenticated as alice) id 7; {NOW_DATE}"
    )
    assert b"for <" not in raw  # recipients are named only when there is one


def test_received_without_helo_or_cipher_bits() -> None:
    raw = stamp.received(
        session(helo=None, tls=TlsInfo("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256")), "mx", 1, [], 0
    )
    value = block.fields(raw)[0][1]
    assert value.startswith("from unknown ([192.0.2.10]) by mx (mailhop)")
    assert "(using TLSv1.2 with cipher ECDHE-RSA-AES128-GCM-SHA256)" in value
    assert "bits" not in value
    assert value.endswith(f"id 1; {EPOCH_DATE}")


def test_received_date_parses_after_the_semicolon() -> None:
    raw = stamp.received(session(), "mx.contoso.com", 42, ["bob@fabrikam.com"], NOW)
    value = block.fields(raw)[0][1]
    date = email.utils.parsedate_to_datetime(value.rpartition(";")[2].strip())
    assert date.timestamp() == NOW


# --- receive.stamp.missing_headers and stamp ----------------------------------------------


@pytest.mark.parametrize(
    ("pairs", "adds_id", "adds_date"),
    [
        ([], True, True),
        ([("Message-ID", "<a@b>")], False, True),
        ([("Date", "x")], True, False),
        ([("message-id", "<a@b>"), ("DATE", "x")], False, False),
    ],
)
def test_missing_headers_adds_only_what_is_missing(
    pairs: list[tuple[str, str]], adds_id: bool, adds_date: bool
) -> None:
    added, message_id = stamp.missing_headers(pairs, "mx.contoso.com", NOW)
    lines = added.decode("ascii").split("\r\n")
    assert lines[-1] == ""  # every added line ends in CRLF
    names = [line.split(":", 1)[0] for line in lines[:-1]]
    assert names == [n for n, wanted in (("Message-ID", adds_id), ("Date", adds_date)) if wanted]
    if adds_date:
        assert f"Date: {NOW_DATE}" in lines
    if adds_id:
        assert message_id is not None
        assert re.fullmatch(r"<[0-9a-f]{32}@mx\.contoso\.com>", message_id)
        assert f"Message-ID: {message_id}" in lines
    else:
        assert message_id == "<a@b>"


def test_generated_message_ids_are_unique() -> None:
    ids = {stamp.missing_headers([], "mx.contoso.com", NOW)[1] for _ in range(50)}
    assert len(ids) == 50


def _stamped(message: bytes) -> tuple[bytes, str | None]:
    headers, _ = block.split(message)
    additions, message_id = stamp.missing_headers(block.fields(headers), "mx.contoso.com", NOW)
    received = stamp.received(session(), "mx.contoso.com", 42, ["bob@fabrikam.com"], NOW)
    return stamp.stamp(message, received, additions), message_id


def test_stamp_puts_received_first_and_additions_at_the_end_of_the_header_block() -> None:
    out, message_id = _stamped(MESSAGE)
    headers, body = block.split(out)
    names = [n for n, _ in block.fields(headers)]
    assert names == ["Received", "From", "To", "Subject", "X-Test", "Message-ID", "Date"]
    assert body == b"body line 1\r\n\r\nbody line 3\r\n"
    parsed = email.message_from_bytes(out, policy=email.policy.compat32)
    assert parsed["Message-ID"] == message_id
    assert parsed["Date"] == NOW_DATE
    assert parsed["Subject"] == "hello\r\n folded world"
    assert parsed.get_payload() == "body line 1\r\n\r\nbody line 3\r\n"


def test_stamp_keeps_existing_message_id_and_date() -> None:
    message = b"Message-ID: <orig@contoso.com>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nSubject: s\r\n\r\nbody\r\n"
    out, message_id = _stamped(message)
    assert message_id == "<orig@contoso.com>"
    received = stamp.received(session(), "mx.contoso.com", 42, ["bob@fabrikam.com"], NOW)
    assert out == received + message  # nothing but the Received: line is added
    pairs = block.fields(block.split(out)[0])
    assert block.count(pairs, "Message-ID") == 1
    assert block.count(pairs, "Date") == 1


@pytest.mark.parametrize(
    ("message", "body"),
    [
        (b"Subject: s\r\n\r\nbody\r\n", b"body\r\n"),
        (b"Subject: s\r\n\r\n", b""),
        (b"Subject: s\r\n", b""),  # headers only, no blank line
        (b"\r\nbody\r\n", b"body\r\n"),  # no headers at all
    ],
)
def test_stamp_handles_every_message_shape(message: bytes, body: bytes) -> None:
    out, _ = _stamped(message)
    assert out.startswith(b"Received: from client.contoso.com")
    headers, out_body = block.split(out)
    names = [n for n, _ in block.fields(headers)]
    assert names[0] == "Received"
    assert names[-2:] == ["Message-ID", "Date"]
    assert out_body == body


def test_stamp_without_additions_only_prepends() -> None:
    assert stamp.stamp(MESSAGE, b"Received: x\r\n", b"") == b"Received: x\r\n" + MESSAGE
