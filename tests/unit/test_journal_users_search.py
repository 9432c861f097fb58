"""The crash journal, the SMTP AUTH users file, and tracking-log search."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mailhop.errors import ValidationError
from mailhop.queue.journal import CrashJournal
from mailhop.receive.users import (
    UserStore,
    add_user,
    check_password,
    hash_password,
    read_users,
    remove_user,
)
from mailhop.tracking.search import Query, parse_time, search


def test_journal_reports_messages_begun_but_not_ended(tmp_path: Path) -> None:
    path = tmp_path / "inflight.journal"
    first = CrashJournal(path)
    assert first.recover() == []
    first.begin(1)
    first.begin(2)
    first.begin(2)  # one message in two queues at once
    first.end(2)
    first.begin(3)
    first.end(3)
    first.flush()
    # The process dies here: no close().
    second = CrashJournal(path)
    assert second.recover() == [1, 2]
    # After a recovery the journal starts empty; a clean stop leaves it empty.
    second.begin(9)
    second.flush()
    second.close()
    assert CrashJournal(path).recover() == []


def test_journal_knows_a_message_handled_alone(tmp_path: Path) -> None:
    path = tmp_path / "inflight.journal"
    first = CrashJournal(path)
    first.recover()
    first.begin(7, alone=True)
    first.flush()
    second = CrashJournal(path)
    assert second.recover() == [7] and second.alone == {7}
    # Begun alone, but something else was in flight too (not isolated): no one is blamed.
    second.begin(7, alone=True)
    second.begin(8)
    second.flush()
    third = CrashJournal(path)
    assert third.recover() == [7, 8] and third.alone == set()
    # Ended, then others in flight: the earlier alone run says nothing now.
    third.begin(5, alone=True)
    third.end(5)
    third.begin(6)
    third.flush()
    fourth = CrashJournal(path)
    assert fourth.recover() == [6] and fourth.alone == set()


def test_journal_compaction_keeps_live_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mailhop.queue.journal as journal

    monkeypatch.setattr(journal, "COMPACT_AT", 200)
    j = CrashJournal(tmp_path / "j")
    j.recover()
    j.begin(42, alone=True)
    for i in range(100):
        j.begin(1000 + i)
        j.end(1000 + i)
        j.flush()
    assert (tmp_path / "j").stat().st_size < 400
    again = CrashJournal(tmp_path / "j")
    assert again.recover() == [42] and again.alone == {42}


def test_passwords_are_hashed_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "users"
    add_user(path, "app1@contoso.test", "s3cret")
    text = path.read_text()
    assert "s3cret" not in text and text.startswith("app1@contoso.test:scrypt$")
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    users = UserStore(path)
    assert users.verify("APP1@contoso.test", "s3cret")
    assert not users.verify("app1@contoso.test", "wrong")
    assert not users.verify("nobody", "s3cret")
    add_user(path, "app2", "other")  # the running server sees new users without a restart
    assert users.verify("app2", "other")
    remove_user(path, "app2")
    assert not users.verify("app2", "other")
    assert list(read_users(path)) == ["app1@contoso.test"]
    with pytest.raises(ValidationError):
        remove_user(path, "app2")
    with pytest.raises(ValidationError):
        add_user(path, "bad name", "x")
    assert check_password("pw", hash_password("pw")) and not check_password("pw", "scrypt$garbage")


def test_tracking_search_filters(tmp_path: Path) -> None:
    folder = tmp_path / "MessageTracking"
    folder.mkdir()
    events = [
        {"Timestamp": "2026-11-28T09:00:00.000Z", "EventId": "RECEIVE", "Sender": "alice@contoso.test",
         "Recipients": ["bob@fabrikam.test"], "MessageId": "<m1@contoso.test>", "InternalMessageId": 1,
         "MessageSubject": "Quarterly numbers"},
        {"Timestamp": "2026-11-28T09:00:01.000Z", "EventId": "SEND", "Sender": "alice@contoso.test",
         "Recipients": ["bob@fabrikam.test"], "MessageId": "<m1@contoso.test>", "InternalMessageId": 1},
        {"Timestamp": "2026-11-28T10:00:00.000Z", "EventId": "FAIL", "Sender": "carol@contoso.test",
         "Recipients": ["dave@fabrikam.test"], "MessageId": "<m2@contoso.test>", "InternalMessageId": 2},
    ]
    (folder / "MSGTRK20261128-1.log").write_text("\n".join(json.dumps(e) for e in events) + "\nnot json\n")

    def ids(**kw: object) -> list[str]:
        return [e["EventId"] for e in search(folder, Query(**kw))]  # type: ignore[arg-type]

    assert ids() == ["RECEIVE", "SEND", "FAIL"]
    assert ids(message_id="m1@contoso.test") == ["RECEIVE", "SEND"]
    assert ids(recipient="DAVE@fabrikam.test") == ["FAIL"]
    assert ids(sender="alice@contoso.test", event="send") == ["SEND"]
    assert ids(internal_message_id=2) == ["FAIL"]
    assert ids(subject="quarterly") == ["RECEIVE"]
    assert ids(start=parse_time("2026-11-28T09:30", 0)) == ["FAIL"]
    assert ids(end=parse_time("2026-11-28T09:00:00.500Z", 0)) == ["RECEIVE"]
    ten_oclock = parse_time("2026-11-28T10:00:00Z", 0)
    assert ids(start=parse_time("30m", ten_oclock)) == ["FAIL"]  # a duration counts back from now
    assert ids(limit=1) == ["RECEIVE"]
    with pytest.raises(ValidationError):
        parse_time("tomorrowish", 0)
