"""A full disk under the data directory answers ``452 4.3.1`` (Exchange's back pressure, Postfix's
"Insufficient system storage"), at MAIL while less than ``[queue] min_free_space`` is free and
at the end of DATA when a write meets the full disk anyway; nothing answered 452 is queued, and
mail flows again once space is freed.  The data directory is a small tmpfs (root or sudo)."""

from __future__ import annotations

import contextlib
import os
import smtplib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.checker import disk_full_possible
from tests.support.mailhop import Mailhop
from tests.support.sink import Sink
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if not disk_full_possible():
        pytest.skip("mounts a tmpfs: needs root or password-less sudo")
    data = tmp_path / "mailhop" / "data"
    data.mkdir(parents=True)
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    subprocess.run([*sudo, "mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(data)], check=True)
    yield data
    subprocess.run([*sudo, "umount", "-l", str(data)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Fill the file system until ``leave`` bytes are free."""
    filler = disk / "filler"
    st = os.statvfs(disk)
    with open(filler, "wb", buffering=0) as f, contextlib.suppress(OSError):
        f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
    return filler


def message(mid: str, size: int) -> str:
    return f"From: app@contoso.test\r\nMessage-ID: {mid}\r\nSubject: big\r\n\r\n" + ("x" * 998 + "\r\n") * (size // 1000)


@pytest.fixture
def capture() -> Iterator[Sink]:
    sink = Sink().start()
    yield sink
    sink.stop()


def relay(m: Mailhop, sink: Sink) -> Mailhop:
    m.start()
    m.relay(sink.port)
    m.wait_config(1)
    return m


def test_a_write_that_meets_a_full_disk_answers_452_4_3_1_and_queues_nothing(
        tmp_path: Path, small_disk: Path, capture: Sink) -> None:
    m = Mailhop(tmp_path / "mailhop", queue={"min_free_space": "0"})  # no back pressure: the write itself fails
    try:
        relay(m, capture)
        filler = fill(small_disk, leave=1 << 20)
        with smtplib.SMTP("127.0.0.1", m.port, timeout=30) as smtp, pytest.raises(smtplib.SMTPDataError) as refused:
            smtp.sendmail("app@contoso.test", ["bob@fabrikam.test"], message("<full@contoso.test>", 3 << 20))
        assert (refused.value.smtp_code, refused.value.smtp_error.split()[0]) == (452, b"4.3.1")
        filler.unlink()
        with smtplib.SMTP("127.0.0.1", m.port, timeout=30) as smtp:
            smtp.sendmail("app@contoso.test", ["bob@fabrikam.test"], message("<freed@contoso.test>", 3 << 20))
        wait_for(lambda: [str(c.message["Message-ID"]) for c in capture.messages] == ["<freed@contoso.test>"],
                 what="the message sent after the space was freed, and only it")
    finally:
        m.stop()


def test_back_pressure_refuses_mail_before_the_body_while_the_disk_is_nearly_full(
        tmp_path: Path, small_disk: Path, capture: Sink) -> None:
    m = Mailhop(tmp_path / "mailhop", queue={"min_free_space": "2MB"})
    try:
        relay(m, capture)
        filler = fill(small_disk, leave=6 << 20)
        with smtplib.SMTP("127.0.0.1", m.port, timeout=30) as smtp:
            smtp.ehlo()
            # 6 MB free: not enough for a declared 5 MB message plus the 2 MB kept free ...
            code, text = smtp.mail("app@contoso.test", ["SIZE=5000000"])
            assert (code, text.split()[0]) == (452, b"4.3.1"), text
            smtp.rset()
            code, _ = smtp.mail("app@contoso.test", ["SIZE=1000000"])  # ... enough for 1 MB
            assert code == 250
            smtp.rset()
            filler.unlink()
            filler = fill(small_disk, leave=1 << 20)
            code, text = smtp.mail("app@contoso.test")  # under 2 MB free: nothing is taken
            assert (code, text.split()[0]) == (452, b"4.3.1"), text
            smtp.rset()
            filler.unlink()
            smtp.sendmail("app@contoso.test", ["bob@fabrikam.test"], message("<after@contoso.test>", 10_000))
        wait_for(lambda: [str(c.message["Message-ID"]) for c in capture.messages] == ["<after@contoso.test>"],
                 what="the message sent after the space was freed")
    finally:
        m.stop()
