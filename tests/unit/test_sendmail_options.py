"""The sendmail command line as applications write it (``mailhop.cli.sendmail.parse``/``prepare``)."""

from __future__ import annotations

import io

import pytest

from mailhop.receive.pickup import Usage, parse, prepare, read_message


@pytest.mark.parametrize(("argv", "expected"), [
    (["-t", "-i"], {"extract": True, "ignore_dots": True, "recipients": []}),
    (["-oi", "-f", "app@contoso.test", "bob@fabrikam.test"], {"ignore_dots": True, "sender": "app@contoso.test",
                                                               "recipients": ["bob@fabrikam.test"]}),
    (["-fapp@contoso.test", "-FThe App", "a@x.test,b@x.test"], {"sender": "app@contoso.test", "full_name": "The App",
                                                                 "recipients": ["a@x.test,b@x.test"]}),
    (["-odi", "-odb", "-oem", "-bm", "-B8BITMIME", "-N", "never", "-v", "--", "-odd@x.test"],
     {"verbose": True, "recipients": ["-odd@x.test"]}),  # after --, even what looks like an option
    (["-r", "old@contoso.test", "x@y.test"], {"sender": "old@contoso.test", "recipients": ["x@y.test"]}),
])
def test_options(argv: list[str], expected: dict[str, object]) -> None:
    o = parse(argv)
    for key, value in expected.items():
        assert getattr(o, key) == value, key


@pytest.mark.parametrize("argv", [["-bs"], ["-bp"], ["-q"], ["-f"], ["--weird"]])
def test_unknown_or_incomplete_options_are_refused(argv: list[str]) -> None:
    with pytest.raises(Usage):
        parse(argv)


def test_a_lone_dot_ends_the_message_unless_i() -> None:
    text = b"Subject: x\n\nline\n.\nafter\n"
    assert read_message(io.BytesIO(text), False, 1000) == b"Subject: x\r\n\r\nline\r\n"
    assert read_message(io.BytesIO(text), True, 1000) == b"Subject: x\r\n\r\nline\r\n.\r\nafter\r\n"


def test_t_reads_to_cc_bcc_and_bcc_never_leaves() -> None:
    data = (b"To: Bob <bob@fabrikam.test>, carol@fabrikam.test\r\nBcc: audit@contoso.test,\r\n secret@contoso.test\r\n"
            b"Subject: s\r\n\r\nbody\r\n")
    m = prepare(parse(["-t", "extra@fabrikam.test"]), data, "exch01.contoso.test", "cron")
    assert m.recipients == ["extra@fabrikam.test", "bob@fabrikam.test", "carol@fabrikam.test", "audit@contoso.test",
                            "secret@contoso.test"]
    assert b"Bcc" not in m.content and b"secret" not in m.content
    assert m.content.startswith(b"From: cron@exch01.contoso.test\r\n") and m.sender == "cron@exch01.contoso.test"


def test_a_bare_name_gets_the_server_domain_and_the_null_sender_stays_null() -> None:
    m = prepare(parse(["-f", "<>", "root"]), b"From: a@b.test\r\n\r\nx\r\n", "exch01.contoso.test", "www-data")
    assert (m.sender, m.recipients) == ("", ["root@exch01.contoso.test"])


def test_the_server_checks_the_envelope_it_is_handed_over_the_control_socket() -> None:
    from mailhop.errors import ValidationError
    from mailhop.receive.local import envelope

    assert envelope("", ["bob@fabrikam.test"], b"x").recipients == ["bob@fabrikam.test"]
    for sender, recipients in (("app@contoso.test", ["bob@"]), ("not an address", ["bob@fabrikam.test"]),
                               ("app@contoso.test", [])):
        with pytest.raises(ValidationError):
            envelope(sender, recipients, b"x")
