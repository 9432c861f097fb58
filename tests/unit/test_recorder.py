"""mailhop.queue.recorder: pure decisions from delivery results and claims to store batches,
tracking events and NDR requests (no store, no clock, no network)."""

from __future__ import annotations

import random

from mailhop.config import QueueSettings
from mailhop.model.connector import new_connector
from mailhop.model.message import (
    DELIVERED,
    FAILED,
    READY,
    RETRY,
    Claim,
    MessageInfo,
    RecipientRow,
)
from mailhop.model.route import SMART_HOST, UNREACHABLE_QUEUE
from mailhop.outcome import Reply
from mailhop.queue import recorder
from mailhop.queue.context import Snapshot
from mailhop.queue.retry import RetryPolicy
from mailhop.routing.router import Router
from mailhop.store.base import QueueState

NOW = 1_900_000_000.0
RETRY_POLICY = RetryPolicy(QueueSettings(retry_jitter=0, glitch_retry_interval=60, message_retry_interval=900),
                           random.Random(1))
CONNECTOR = new_connector({"Name": "Smarthost", "AddressSpaces": "*", "DNSRoutingEnabled": "false",
                           "SmartHosts": "relay.contoso.test"}, "EXCH01")
SNAPSHOT = Snapshot(Router([CONNECTOR], "EXCH01"))
OK = Reply(250, "2.0.0", "queued")
LATER = Reply(451, "4.7.1", "try later")
GONE = Reply(550, "5.1.1", "no such user")


def info(**fields: object) -> MessageInfo:
    values: dict[str, object] = {"id": 7, "sender": "alice@contoso.test", "received_at": NOW - 60, "size": 100,
                                 "origin_server": "EXCH01", "expires_at": NOW + 86400, "delay_at": NOW + 3600}
    values.update(fields)
    return MessageInfo(**values)  # type: ignore[arg-type]


def row(rid: int, address: str, queue: str = "Smarthost", attempts: int = 0,
        last_error: str | None = None) -> RecipientRow:
    return RecipientRow(rid, 7, address, "active", queue, SMART_HOST, "relay.contoso.test", NOW - 1,
                        CONNECTOR.guid, attempts, last_error, "EXCH01/0/x")


def delivered(claim: Claim, replies: dict[int, Reply], hop_failure: bool = False,
              snapshot: Snapshot = SNAPSHOT) -> recorder.Decision:
    return recorder.after_delivery(claim, "Smarthost", "relay.contoso.test", replies, hop_failure=hop_failure,
                                   was_attempted=True, remote_host="relay.contoso.test", remote_ip="192.0.2.1",
                                   tls=("TLSv1.3", "TLS_AES_128_GCM_SHA256", "opportunistic"), snapshot=snapshot, now=NOW,
                                   retry=RETRY_POLICY)


def test_each_recipient_gets_the_outcome_of_its_reply_class() -> None:
    claim = Claim(info(), [row(1, "ok@x.test"), row(2, "later@x.test"), row(3, "gone@x.test")], b"body")
    d = delivered(claim, {1: OK, 2: LATER, 3: GONE})
    outcomes = {o.recipient_id: o for o in d.batch.outcomes}
    assert (outcomes[1].status, outcomes[2].status, outcomes[3].status) == (DELIVERED, RETRY, FAILED)
    assert outcomes[2].next_attempt_at == NOW + 900 and outcomes[2].last_error == str(LATER)
    assert all(o.attempted for o in outcomes.values())
    assert outcomes[3].last_error == str(GONE)
    assert [(e.event_id, e.recipients) for e in d.events] == [
        ("SEND", ("ok@x.test",)), ("DEFER", ("later@x.test",)), ("FAIL", ("gone@x.test",))]
    assert d.events[0].extra["RemoteHost"] == "relay.contoso.test" and d.events[0].server_ip == "192.0.2.1"
    [ndr] = d.notices
    assert [(r.address, r.reply, r.remote_mta) for r in ndr.reports] == [("gone@x.test", GONE, "relay.contoso.test")]
    assert ndr.original == b"body" and not ndr.delayed


def test_a_retry_is_never_scheduled_past_the_delay_notice_or_expiry() -> None:
    claim = Claim(info(delay_at=NOW + 100), [row(1, "later@x.test")])
    d = delivered(claim, {1: LATER})
    assert d.batch.outcomes[0].next_attempt_at == NOW + 100


def test_a_hop_failure_puts_the_queue_in_retry_and_every_recipient_waits_for_it() -> None:
    claim = Claim(info(), [row(1, "a@x.test"), row(2, "b@x.test")])
    down = Reply(441, "4.4.1", "connection refused")
    d = delivered(claim, {1: down, 2: down}, hop_failure=True)
    state = d.queue_state
    assert state is not None and (state.queue, state.retry_count, state.retry_until) == ("Smarthost", 1, NOW + 60)
    assert state.first_retry_at == NOW and state.last_error == str(down)
    assert {o.next_attempt_at for o in d.batch.outcomes} == {NOW + 60}
    # A second job of the same outage keeps the schedule and changes no state.
    again = delivered(claim, {1: down, 2: down}, hop_failure=True, snapshot=SNAPSHOT.with_state(state))
    assert again.queue_state is None and {o.next_attempt_at for o in again.batch.outcomes} == {NOW + 60}


def test_a_working_connection_takes_the_queue_out_of_retry() -> None:
    in_retry = SNAPSHOT.with_state(QueueState("Smarthost", retry_count=3, retry_until=NOW - 1,
                                              first_retry_at=NOW - 600, last_error="441 4.4.1 down"))
    d = delivered(Claim(info(), [row(1, "a@x.test")]), {1: OK}, snapshot=in_retry)
    assert d.queue_state is not None
    assert (d.queue_state.retry_count, d.queue_state.retry_until, d.queue_state.last_error) == (0, None, None)
    assert delivered(Claim(info(), [row(1, "a@x.test")]), {1: OK}).queue_state is None  # nothing to clear


def test_an_expired_message_fails_every_recipient_with_queue_expired() -> None:
    claim = Claim(info(expires_at=NOW - 1), [row(1, "a@x.test", last_error="451 4.4.0 down"),
                                             row(2, "b@x.test", queue=UNREACHABLE_QUEUE)])
    d = recorder.after_claim(claim, SNAPSHOT, NOW)
    assert [o.status for o in d.batch.outcomes] == [FAILED, FAILED]
    assert d.batch.outcomes[0].last_error == "550 4.4.7 QUEUE.Expired; message expired. Reason: 451 4.4.0 down"
    assert d.batch.outcomes[1].last_error.startswith(
        "550 4.4.7 QUEUE.Expired; message expired in unreachable destination queue")
    assert [(e.event_id, e.source) for e in d.events] == [("FAIL", "QUEUE"), ("FAIL", "QUEUE")]
    assert [len(n.reports) for n in d.notices] == [2] and not d.deliver


def test_a_message_a_tls_policy_held_back_expires_with_5_7_x() -> None:
    # Mandatory DANE, MTA-STS enforce, REQUIRETLS: deferred with 4.7.5, then the NDR says 5.7.5 and why.
    reason = "451 4.7.5 SmtpDaneMode Mandatory: mx.fabrikam.test is not DNSSEC-secure"
    claim = Claim(info(expires_at=NOW - 1), [row(1, "a@x.test", last_error=reason)])
    d = recorder.after_claim(claim, SNAPSHOT, NOW)
    assert d.batch.outcomes[0].last_error == f"550 5.7.5 QUEUE.Expired; message expired. Reason: {reason}"


def test_the_delay_dsn_is_asked_for_once_and_only_for_recipients_already_tried() -> None:
    claim = Claim(info(delay_at=NOW - 1), [row(1, "tried@x.test", attempts=2, last_error="451 4.7.1 later"),
                                           row(2, "fresh@x.test")])
    d = recorder.after_claim(claim, SNAPSHOT, NOW)
    [notice] = d.notices
    assert notice.delayed and [r.address for r in notice.reports] == ["tried@x.test"]
    assert str(notice.reports[0].reply) == "451 4.7.1 later"
    assert d.batch.delay_notified == [7] and claim.message.delay_at is None
    assert [r.address for r in d.deliver] == ["tried@x.test", "fresh@x.test"]


def test_a_claimed_recipient_is_routed_again_and_waits_when_its_queue_is_suspended_or_in_retry() -> None:
    claim = Claim(info(), [row(1, "a@x.test")])
    assert [r.address for r in recorder.after_claim(claim, SNAPSHOT, NOW).deliver] == ["a@x.test"]
    suspended = SNAPSHOT.with_state(QueueState("Smarthost", suspended=True))
    d = recorder.after_claim(Claim(info(), [row(1, "a@x.test")]), suspended, NOW)
    assert not d.deliver and (d.batch.outcomes[0].status, d.batch.outcomes[0].queue) == (READY, "Smarthost")
    in_retry = SNAPSHOT.with_state(QueueState("Smarthost", retry_count=1, retry_until=NOW + 300, last_error="x"))
    d = recorder.after_claim(Claim(info(), [row(1, "a@x.test")]), in_retry, NOW)
    assert not d.deliver and (d.batch.outcomes[0].status, d.batch.outcomes[0].next_attempt_at) == (RETRY, NOW + 300)


def test_without_a_connector_a_claimed_recipient_goes_to_unreachable() -> None:
    d = recorder.after_claim(Claim(info(), [row(1, "a@x.test")]), Snapshot(Router([], "EXCH01")), NOW)
    [o] = d.batch.outcomes
    assert (o.status, o.queue, o.clear_connector) == (RETRY, UNREACHABLE_QUEUE, True)
    assert o.next_attempt_at == NOW + 3600  # it waits for the delay notice
