"""mailhop.outcome and mailhop.smtp.replies: SMTP replies with RFC 3463 enhanced status codes."""

from __future__ import annotations

import pytest

from mailhop.outcome import QUEUE_EXPIRED, ROUTING_SIZE_LIMIT, Outcome, Reply
from mailhop.smtp.replies import MESSAGE_TOO_BIG, RELAY_DENIED

# --- Reply.parse --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message", "enhanced", "text"),
    [
        (250, "2.0.0 OK", "2.0.0", "OK"),
        (250, "2.1.5 Recipient OK", "2.1.5", "Recipient OK"),
        (550, "5.1.1 User unknown", "5.1.1", "User unknown"),
        (550, "5.7.54 SMTP; Unable to relay", "5.7.54", "SMTP; Unable to relay"),
        (452, "4.5.3  Too many recipients", "4.5.3", "Too many recipients"),
        (550, "5.7.1", "5.7.1", ""),
        (550, "5.123.456 odd", "5.123.456", "odd"),
        # Exchange pairs 550 with 4.4.7 (QUEUE.Expired): keep what the peer said
        (550, "4.4.7 QUEUE.Expired; message expired", "4.4.7", "QUEUE.Expired; message expired"),
        # no enhanced code: the class default
        (250, "OK", "2.0.0", "OK"),
        (451, "Try again later", "4.0.0", "Try again later"),
        (554, "Transaction failed", "5.0.0", "Transaction failed"),
        (421, "", "4.0.0", ""),
        (354, "Start mail input", "", "Start mail input"),
        # not an enhanced code
        (550, "5.1.1User unknown", "5.0.0", "5.1.1User unknown"),
        (500, "9.9.9 weird", "5.0.0", "9.9.9 weird"),
        (550, "5.1 short", "5.0.0", "5.1 short"),
        (550, "5.1234.1 long", "5.0.0", "5.1234.1 long"),
        # multi-line text is joined
        (250, "mx.example.com Hello\nSIZE 1000\n8BITMIME", "2.0.0", "mx.example.com Hello SIZE 1000 8BITMIME"),
        (550, "5.7.1 first\r\n5.7.1 second", "5.7.1", "first 5.7.1 second"),
    ],
)
def test_parse(code: int, message: str, enhanced: str, text: str) -> None:
    assert Reply.parse(code, message) == Reply(code, enhanced, text)


# --- Reply.from_string --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("451 4.4.0 Primary target IP address responded", Reply(451, "4.4.0", "Primary target IP address responded")),
        ("550 5.1.1 User unknown", Reply(550, "5.1.1", "User unknown")),
        ("550-5.1.1 continued", Reply(550, "5.1.1", "continued")),
        ("  550 5.7.54 SMTP; Unable to relay  ", Reply(550, "5.7.54", "SMTP; Unable to relay")),
        ("250", Reply(250, "2.0.0", "")),
        ("421 Service closing", Reply(421, "4.0.0", "Service closing")),
        ("550 4.4.7 QUEUE.Expired; message expired", Reply(550, "4.4.7", "QUEUE.Expired; message expired")),
        ("550 5.7.1 one\nmore", Reply(550, "5.7.1", "one more")),
        # not a reply at all: a temporary failure carrying the text
        ("connection reset by peer", Reply(451, "4.0.0", "connection reset by peer")),
        ("45 short", Reply(451, "4.0.0", "45 short")),
        # a four-digit number is not an SMTP code
        ("4510 x", Reply(451, "4.0.0", "4510 x")),
    ],
)
def test_from_string(stored: str, expected: Reply) -> None:
    assert Reply.from_string(stored) == expected


@pytest.mark.parametrize(
    "reply",
    [
        Reply(250, "2.0.0", "Queued"),
        Reply(451, "4.4.0", "DNS query failed"),
        Reply(550, "5.7.54", "SMTP; Unable to relay recipient in non-accepted domain"),
        QUEUE_EXPIRED,
        ROUTING_SIZE_LIMIT,
        MESSAGE_TOO_BIG,
    ],
)
def test_str_parses_back(reply: Reply) -> None:
    assert Reply.from_string(str(reply)) == reply


# --- str, lines, wire ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "text"),
    [
        (Reply(250, "2.0.0", "OK"), "250 2.0.0 OK"),
        (Reply(354, "", "Start mail input"), "354 Start mail input"),
        (Reply(421, "4.3.2", ""), "421 4.3.2"),
        (Reply(250, "", ""), "250"),
        (ROUTING_SIZE_LIMIT, "550 5.3.4 ROUTING.SizeLimit; message size exceeds fixed maximum size for route"),
        (RELAY_DENIED, "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain"),
    ],
)
def test_str(reply: Reply, text: str) -> None:
    assert str(reply) == text


@pytest.mark.parametrize(
    ("reply", "lines"),
    [
        (Reply(250, "2.0.0", "OK"), ["250 2.0.0 OK"]),
        (Reply(250, "", ""), ["250"]),
        (Reply(250, "2.0.0", ""), ["250 2.0.0"]),
        (Reply(354, "", "End data with <CR><LF>.<CR><LF>"), ["354 End data with <CR><LF>.<CR><LF>"]),
        (Reply(250, "", "mx.example.com\nPIPELINING\nSIZE 36700160"), ["250-mx.example.com", "250-PIPELINING", "250 SIZE 36700160"]),
        # the enhanced code is repeated on every line (RFC 2034)
        (Reply(550, "5.7.1", "first\nsecond"), ["550-5.7.1 first", "550 5.7.1 second"]),
    ],
)
def test_lines(reply: Reply, lines: list[str]) -> None:
    assert reply.lines() == lines


@pytest.mark.parametrize(
    ("reply", "wire"),
    [
        (Reply(250, "2.0.0", "OK"), b"250 2.0.0 OK\r\n"),
        (Reply(550, "5.7.1", "first\nsecond"), b"550-5.7.1 first\r\n550 5.7.1 second\r\n"),
        (Reply(250, "", "caf\u00e9"), "250 café\r\n".encode()),
    ],
)
def test_wire(reply: Reply, wire: bytes) -> None:
    assert reply.wire() == wire


# --- classification -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind", "ok", "temporary", "permanent"),
    [
        (220, Outcome.DELIVERED, True, False, False),
        (250, Outcome.DELIVERED, True, False, False),
        (421, Outcome.TEMPORARY, False, True, False),
        (450, Outcome.TEMPORARY, False, True, False),
        (451, Outcome.TEMPORARY, False, True, False),
        (452, Outcome.TEMPORARY, False, True, False),
        (499, Outcome.TEMPORARY, False, True, False),
        (500, Outcome.PERMANENT, False, False, True),
        (550, Outcome.PERMANENT, False, False, True),
        (554, Outcome.PERMANENT, False, False, True),
    ],
)
def test_outcome(code: int, kind: Outcome, ok: bool, temporary: bool, permanent: bool) -> None:
    reply = Reply.parse(code, "text")
    assert reply.outcome is kind
    assert (reply.ok, reply.temporary, reply.permanent) == (ok, temporary, permanent)


def test_classification_follows_the_code_not_the_enhanced_class() -> None:
    # 550 4.4.7 QUEUE.Expired is a permanent failure although its enhanced class is 4.
    assert QUEUE_EXPIRED.outcome is Outcome.PERMANENT
    assert QUEUE_EXPIRED.permanent and not QUEUE_EXPIRED.temporary


def test_reply_is_immutable_and_hashable() -> None:
    reply = Reply(250, "2.0.0", "OK")
    with pytest.raises(AttributeError):
        reply.code = 550  # type: ignore[misc]
    assert {reply, Reply(250, "2.0.0", "OK")} == {reply}
