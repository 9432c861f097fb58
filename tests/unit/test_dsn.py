"""mailhop.queue.dsn: NDRs and delay DSNs as RFC 3464 multipart/report messages."""

from __future__ import annotations

import email
import email.policy
import email.utils
from email.message import Message

import pytest

from mailhop.model import dsn_params
from mailhop.model.message import MessageInfo
from mailhop.outcome import Reply
from mailhop.queue.dsn import RecipientReport, build, should_notify

RECEIVED_AT = 1_700_000_000.0
NOW = RECEIVED_AT + 3_600
RETRY_UNTIL = RECEIVED_AT + 2 * 86_400

ORIGINAL = (
    b"From: alice@contoso.com\r\n"
    b"To: bob@fabrikam.com\r\n"
    b"Subject: Quarterly report\r\n"
    b"Message-ID: <orig@contoso.com>\r\n"
    b"\r\n"
    b"Hello Bob,\r\n"
    b"the numbers are attached.\r\n"
)

BOB = RecipientReport("bob@fabrikam.com", Reply(550, "5.1.1", "User unknown"), "mx.fabrikam.com")
CAROL = RecipientReport("carol@fabrikam.com", Reply(554, "", "Rejected"))
DAVE = RecipientReport("dave@fabrikam.com", Reply(451, "4.4.0", "Connection refused"), "mx.fabrikam.com")


def info(sender: str = "alice@contoso.com") -> MessageInfo:
    return MessageInfo(
        id=4242,
        sender=sender,
        received_at=RECEIVED_AT,
        size=len(ORIGINAL),
        origin_server="EXCH01",
        expires_at=RETRY_UNTIL,
    )


def make(
    reports: list[RecipientReport],
    *,
    original: bytes = ORIGINAL,
    attach_limit: int | None = None,
    delayed: bool = False,
    retry_until: float | None = None,
) -> tuple[bytes, str, Message]:
    data, message_id = build(
        info(),
        original,
        reports,
        reporting_mta="mx.contoso.com",
        postmaster="postmaster@contoso.com",
        now=NOW,
        attach_limit=attach_limit,
        delayed=delayed,
        retry_until=retry_until,
    )
    return data, message_id, email.message_from_bytes(data, policy=email.policy.compat32)


def parts(msg: Message) -> list[Message]:
    payload = msg.get_payload()
    assert isinstance(payload, list)
    return payload


def status_groups(msg: Message) -> list[Message]:
    report = parts(msg)[1]
    assert report.get_content_type() == "message/delivery-status"
    groups = report.get_payload()
    assert isinstance(groups, list)
    return groups


# --- should_notify ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sender", "expected"), [("alice@contoso.com", True), ("", False)]
)
def test_should_notify_never_for_the_null_sender(sender: str, expected: bool) -> None:
    assert should_notify(info(sender)) is expected


# --- structure ----------------------------------------------------------------------------


def test_ndr_is_a_multipart_report_with_three_parts() -> None:
    _, _, msg = make([BOB])
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert [p.get_content_type() for p in parts(msg)] == [
        "text/plain",
        "message/delivery-status",
        "message/rfc822",
    ]
    assert not msg.defects


def test_ndr_top_level_headers() -> None:
    _, message_id, msg = make([BOB])
    assert msg["From"] == "Mail Delivery System <postmaster@contoso.com>"
    assert msg["To"] == "<alice@contoso.com>"
    assert msg["Subject"] == "Undeliverable: Quarterly report"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Message-ID"] == message_id
    assert message_id.startswith("<") and message_id.endswith("@mx.contoso.com>")
    assert email.utils.parsedate_to_datetime(msg["Date"]).timestamp() == NOW


def test_each_dsn_gets_its_own_message_id() -> None:
    assert make([BOB])[1] != make([BOB])[1]


def test_subject_without_original_subject() -> None:
    _, _, msg = make([BOB], original=b"From: a@contoso.com\r\n\r\nbody\r\n")
    assert msg["Subject"] == "Undeliverable:"


def test_dsn_uses_crlf_line_ends() -> None:
    data, _, _ = make([BOB, CAROL])
    assert b"\n" not in data.replace(b"\r\n", b"")


# --- the machine-readable part ------------------------------------------------------------


def test_per_message_fields() -> None:
    _, _, msg = make([BOB])
    per_message = status_groups(msg)[0]
    assert per_message["Reporting-MTA"] == "dns; mx.contoso.com"
    arrival = email.utils.parsedate_to_datetime(per_message["Arrival-Date"])
    assert arrival.timestamp() == RECEIVED_AT


@pytest.mark.parametrize(
    ("report", "status", "remote_mta", "diagnostic"),
    [
        (BOB, "5.1.1", "dns; mx.fabrikam.com", "smtp; 550 5.1.1 User unknown"),
        (CAROL, "5.0.0", None, "smtp; 554 Rejected"),  # no enhanced code: the class default
        (
            RecipientReport("erin@fabrikam.com", Reply(550, "4.4.7", "QUEUE.Expired; message expired")),
            "4.4.7",
            None,
            "smtp; 550 4.4.7 QUEUE.Expired; message expired",
        ),
    ],
)
def test_per_recipient_fields_of_an_ndr(
    report: RecipientReport, status: str, remote_mta: str | None, diagnostic: str
) -> None:
    _, _, msg = make([report])
    [group] = status_groups(msg)[1:]
    assert group["Final-Recipient"] == f"rfc822; {report.address}"
    assert group["Action"] == "failed"
    assert group["Status"] == status
    assert group["Remote-MTA"] == remote_mta
    assert group["Diagnostic-Code"] == diagnostic
    assert group["Will-Retry-Until"] is None


def test_one_group_per_recipient_in_order() -> None:
    _, _, msg = make([BOB, CAROL])
    groups = status_groups(msg)[1:]
    assert [g["Final-Recipient"] for g in groups] == [
        "rfc822; bob@fabrikam.com",
        "rfc822; carol@fabrikam.com",
    ]
    assert [g["Status"] for g in groups] == ["5.1.1", "5.0.0"]


def test_human_readable_part_names_each_recipient_and_reply() -> None:
    _, _, msg = make([BOB, CAROL])
    text = parts(msg)[0].get_payload(decode=True).decode("utf-8")
    assert "Delivery has failed to these recipients or groups:" in text
    assert "bob@fabrikam.com" in text
    assert "'550 5.1.1 User unknown'" in text
    assert "carol@fabrikam.com" in text
    assert "Generating server: mx.contoso.com" in text
    assert "Remote server mx.fabrikam.com returned '550 5.1.1 User unknown'" in text
    assert "Local server returned '554 Rejected'" in text


# --- delay DSN ----------------------------------------------------------------------------


def test_delay_dsn() -> None:
    _, _, msg = make([DAVE], delayed=True, retry_until=RETRY_UNTIL)
    assert msg["Subject"] == "Delivery delayed: Quarterly report"
    [group] = status_groups(msg)[1:]
    assert group["Action"] == "delayed"
    assert group["Status"] == "4.4.0"
    assert group["Diagnostic-Code"] == "smtp; 451 4.4.0 Connection refused"
    assert group["Remote-MTA"] == "dns; mx.fabrikam.com"
    until = email.utils.parsedate_to_datetime(group["Will-Retry-Until"])
    assert until.timestamp() == RETRY_UNTIL
    text = parts(msg)[0].get_payload(decode=True).decode("utf-8")
    assert "Delivery is delayed to these recipients or groups:" in text
    assert "dave@fabrikam.com" in text
    assert "Delivery has failed" not in text


def test_delay_dsn_status_defaults_to_4_0_0() -> None:
    report = RecipientReport("dave@fabrikam.com", Reply(421, "", "Try later"))
    _, _, msg = make([report], delayed=True, retry_until=RETRY_UNTIL)
    assert status_groups(msg)[1]["Status"] == "4.0.0"


# --- the returned original ----------------------------------------------------------------


@pytest.mark.parametrize("attach_limit", [None, len(ORIGINAL), len(ORIGINAL) + 1, 10 * 1024 * 1024])
def test_original_is_attached_whole_up_to_the_limit(attach_limit: int | None) -> None:
    data, _, msg = make([BOB], attach_limit=attach_limit)
    attached = parts(msg)[2]
    assert attached.get_content_type() == "message/rfc822"
    [inner] = attached.get_payload()
    assert inner["Subject"] == "Quarterly report"
    assert inner["Message-ID"] == "<orig@contoso.com>"
    assert inner.get_payload() == "Hello Bob,\r\nthe numbers are attached.\r\n"
    assert b"the numbers are attached." in data


@pytest.mark.parametrize("attach_limit", [0, 10, len(ORIGINAL) - 1])
def test_only_headers_are_attached_above_the_limit(attach_limit: int) -> None:
    data, _, msg = make([BOB], attach_limit=attach_limit)
    attached = parts(msg)[2]
    assert attached.get_content_type() == "text/rfc822-headers"
    headers = attached.get_payload()
    assert isinstance(headers, str)
    returned = email.message_from_string(headers)
    assert returned["Subject"] == "Quarterly report"
    assert returned["From"] == "alice@contoso.com"
    assert b"Hello Bob" not in data
    assert b"the numbers are attached." not in data


def test_original_without_trailing_crlf_is_still_well_formed() -> None:
    original = b"Subject: no newline\r\n\r\nlast line"
    data, _, msg = make([BOB], original=original)
    [inner] = parts(msg)[2].get_payload()
    assert inner["Subject"] == "no newline"
    assert inner.get_payload().rstrip("\r\n") == "last line"
    assert data.endswith(b"--\r\n")
    assert not msg.defects


# --- RFC 3461 parameters ------------------------------------------------------------------


def test_dsn_parameters_are_checked_and_normalized() -> None:
    assert dsn_params.mail_params("hdrs", "QQ+2B314159") == "RET=HDRS ENVID=QQ+2B314159"
    assert dsn_params.rcpt_params("delay,Success", "RFC822;bob+40x") == "NOTIFY=SUCCESS,DELAY ORCPT=rfc822;bob+40x"
    assert dsn_params.rcpt_params("never", None) == "NOTIFY=NEVER"
    for notify, orcpt in (("NEVER,FAILURE", None), ("OFTEN", None), ("", None), (None, "bob@x"),
                          (None, "rfc822;bad+zz"), (None, "rfc 822;bob@x"), (None, "rfc822;a b")):
        with pytest.raises(ValueError):
            dsn_params.rcpt_params(notify, orcpt)
    for ret, envid in (("SOME", None), (None, "a" * 101), (None, "has space"), (None, "")):
        with pytest.raises(ValueError):
            dsn_params.mail_params(ret, envid)


def test_notify_decides_who_hears_of_what() -> None:
    assert dsn_params.wants(None, "FAILURE") and dsn_params.wants(None, "DELAY")
    assert not dsn_params.wants(None, "SUCCESS")
    never = dsn_params.rcpt_params("NEVER", None)
    assert not any(dsn_params.wants(never, e) for e in ("SUCCESS", "FAILURE", "DELAY"))
    success = dsn_params.rcpt_params("SUCCESS", "rfc822;bob+2Bx@fabrikam.com")
    assert dsn_params.wants(success, "SUCCESS") and not dsn_params.wants(success, "FAILURE")
    assert dsn_params.orcpt(success) == "rfc822;bob+x@fabrikam.com"


def test_envid_and_orcpt_appear_in_the_dsn_fields() -> None:
    message = info()
    message.dsn = "ENVID=QQ314159"
    bob = RecipientReport(BOB.address, BOB.reply, BOB.remote_mta, "ORCPT=rfc822;bob+40home@fabrikam.com")
    data, _ = build(message, ORIGINAL, [bob], reporting_mta="mx.contoso.com", postmaster="postmaster@contoso.com",
                    now=NOW, attach_limit=None)
    status = email.message_from_bytes(data, policy=email.policy.compat32).get_payload()[1].as_string()
    assert "Original-Envelope-Id: QQ314159" in status
    assert "Original-Recipient: rfc822; bob@home@fabrikam.com" in status
    assert status.index("Original-Recipient") < status.index("Final-Recipient")
