"""DSN (RFC 3461): RET, ENVID, NOTIFY and ORCPT taken, checked, kept, passed on, and honoured.

The next hop is an aiosmtpd receiver (tests/support/tlsfix.py) reached as a smart host, which
offers DSN or not, records the DSN parameters it was given, and refuses recipients whose local
part starts with ``reject``.  The DSNs mailhop writes go back to the sender through the same
connector, so they arrive there too (from the null sender).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import uuid
from typing import Any

import aiosmtplib
import pytest

from tests.integration.test_tls_auth import add_relay, receiver_factory
from tests.support.client import make_message
from tests.support.postfix import Postfix, start_throwaway, stop_throwaway
from tests.support.tlsfix import Receiver
from tests.support.wait import async_wait_for

SENDER = "alice@contoso.test"
__all__ = ["receiver_factory"]  # the fixture, shared with test_tls_auth


async def send(t: Any, to: str, mail_options: list[str] | None = None, rcpt_options: list[str] | None = None,
               subject: str = "Quarterly numbers", body: str = "The body text 4242.\r\n") -> int:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=t.port, start_tls=False)
    await smtp.connect()
    try:
        await smtp.ehlo()
        assert smtp.supports_extension("dsn")
        await smtp.mail(SENDER, options=mail_options or [])
        await smtp.rcpt(to, options=rcpt_options or [])
        reply = await smtp.data(make_message(subject, body, sender=SENDER, to=to))
    finally:
        await smtp.quit()
    m = re.search(r"queued as (\d+)", reply.message)
    assert m, reply
    return int(m.group(1))


async def _empty(t: Any) -> bool:
    return not await t.store.queues.messages()


def reports_to_sender(rx: Receiver, about: str) -> list[Any]:
    return [a for a in rx.arrivals if a.mail_from == "" and SENDER in a.rcpt_tos and about.encode() in a.data]


def delivery_status(arrival: Any) -> str:
    [part] = [p for p in arrival.message.walk() if p.get_content_type() == "message/delivery-status"]
    return "\n".join(str(x) for x in part.get_payload())  # type: ignore[union-attr]


async def test_bad_dsn_parameters_get_501_5_5_4(transport_factory: Any) -> None:
    t = await transport_factory()
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=t.port, start_tls=False)
    await smtp.connect()
    try:
        await smtp.ehlo()
        for bad in ("MAIL FROM:<a@contoso.test> RET=SOME", "MAIL FROM:<a@contoso.test> ENVID=a+zz",
                    "MAIL FROM:<a@contoso.test> ENVID"):
            reply = await smtp.execute_command(bad.encode())
            assert reply.code == 501 and reply.message.startswith("5.5.4"), (bad, reply)
        assert (await smtp.execute_command(b"MAIL FROM:<a@contoso.test> RET=HDRS ENVID=QQ314159")).code == 250
        for bad in ("NOTIFY=NEVER,SUCCESS", "NOTIFY=SOMETIMES", "NOTIFY=", "ORCPT=bob@fabrikam.test",
                    "ORCPT=rfc822;bad+zzaddress", "ORCPT=rfc822;"):
            reply = await smtp.execute_command(f"RCPT TO:<bob@fabrikam.test> {bad}".encode())
            assert reply.code == 501 and reply.message.startswith("5.5.4"), (bad, reply)
        ok = await smtp.execute_command(b"RCPT TO:<bob@fabrikam.test> NOTIFY=failure,success ORCPT=rfc822;bob+40x")
        assert ok.code == 250, ok
    finally:
        await smtp.quit()


async def test_dsn_parameters_are_passed_on_to_a_next_hop_that_offers_dsn(transport_factory: Any,
                                                                         receiver_factory: Any) -> None:
    rx = receiver_factory(dsn=True)
    t = await transport_factory()
    await add_relay(t, rx)
    to = f"{uuid.uuid4().hex[:8]}@fabrikam.test"
    await send(t, to, ["RET=HDRS", "ENVID=QQ314159"], ["NOTIFY=SUCCESS,FAILURE", f"ORCPT=rfc822;{to}"])
    [arrival] = await async_wait_for(lambda: [a for a in rx.arrivals if to in a.rcpt_tos], what="delivery")
    assert arrival.mail_dsn == "RET=HDRS ENVID=QQ314159"
    assert arrival.rcpt_dsn == [f"NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;{to}"]
    # The next hop reports success itself: nothing comes back from mailhop (had a DSN been made,
    # it would have been queued with the outcome, and delivered here before the queue is empty).
    await async_wait_for(lambda: _empty(t), what="an empty queue")
    assert not reports_to_sender(rx, to)


async def test_notify_success_without_dsn_at_the_next_hop_gets_a_relayed_dsn(transport_factory: Any,
                                                                            receiver_factory: Any) -> None:
    rx = receiver_factory(dsn=False)
    t = await transport_factory()
    await add_relay(t, rx)
    to = f"{uuid.uuid4().hex[:8]}@fabrikam.test"
    await send(t, to, ["ENVID=QQ314159"], ["NOTIFY=SUCCESS", "ORCPT=rfc822;bob+2Bdsn@fabrikam.test"])
    [dsn] = await async_wait_for(lambda: reports_to_sender(rx, to), what="the relayed DSN")
    [delivered] = [a for a in rx.arrivals if to in a.rcpt_tos]
    assert delivered.mail_dsn == "" and delivered.rcpt_dsn == [""]  # not offered, not passed on
    assert dsn.message["Subject"].startswith("Relayed:")
    status = delivery_status(dsn)
    assert "Original-Envelope-Id: QQ314159" in status
    assert "Original-Recipient: rfc822; bob+dsn@fabrikam.test" in status
    assert "Action: relayed" in status and "Status: 2." in status


async def test_notify_never_gets_no_ndr_and_the_default_does(transport_factory: Any, receiver_factory: Any) -> None:
    rx = receiver_factory(refuse=("reject",))
    t = await transport_factory()
    await add_relay(t, rx)
    never = f"reject-{uuid.uuid4().hex[:8]}@fabrikam.test"
    await send(t, never, rcpt_options=["NOTIFY=NEVER"])
    told = f"reject-{uuid.uuid4().hex[:8]}@fabrikam.test"
    await send(t, told, ["RET=HDRS", "ENVID=ENV42"], [f"ORCPT=rfc822;{told}"], body="The secret body 9191.\r\n")
    [ndr] = await async_wait_for(lambda: reports_to_sender(rx, told), what="the NDR")
    status = delivery_status(ndr)
    assert "Action: failed" in status and "Status: 5.1.1" in status and "Original-Envelope-Id: ENV42" in status
    assert f"Original-Recipient: rfc822; {told}" in status
    # RET=HDRS: the headers come back, not the body.
    assert b"text/rfc822-headers" in ndr.data and b"9191" not in ndr.data and b"Quarterly numbers" in ndr.data
    # The FAIL of the NOTIFY=NEVER recipient is tracked, and no NDR was sent for it.
    await async_wait_for(lambda: [e for e in t.tracking() if e["EventId"] == "FAIL" and never in e["Recipients"]],
                         what="the FAIL event")
    await async_wait_for(lambda: _empty(t), what="an empty queue")
    assert not reports_to_sender(rx, never)


# --- against Postfix, as next hop and as client ---------------------------------------------------


@pytest.fixture
def postfix_factory() -> Any:
    started: list[Postfix] = []

    def make(relayhost: str) -> Postfix:
        started.append(start_throwaway(relayhost))
        return started[-1]

    yield make
    for pf in started:
        stop_throwaway(pf)


async def test_postfix_as_next_hop_gets_the_dsn_parameters(transport_factory: Any, receiver_factory: Any,
                                                          postfix_factory: Any) -> None:
    # mailhop -> Postfix (offers DSN) -> a receiver without DSN: Postfix, given NOTIFY=SUCCESS and
    # ENVID by mailhop, sends the sender its own "relayed" DSN quoting them.
    rx = receiver_factory(dsn=False)
    pf = postfix_factory(f"[127.0.0.1]:{rx.port}")
    t = await transport_factory()
    await t.connector(Name="Relay", DNSRoutingEnabled="false", SmartHosts=f"[127.0.0.1]:{pf.listeners[0].port}",
                      AddressSpaces="*")
    to = f"{uuid.uuid4().hex[:8]}@fabrikam.test"
    await send(t, to, ["ENVID=MH2026"], ["NOTIFY=SUCCESS", f"ORCPT=rfc822;{to}"])
    [report] = await async_wait_for(lambda: reports_to_sender(rx, "MH2026"), what="Postfix's relayed DSN")
    status = delivery_status(report)
    assert "Original-Envelope-Id: MH2026" in status and "Action: relayed" in status
    assert f"Original-Recipient: rfc822;{to}" in status.replace("; ", ";")
    assert [a for a in rx.arrivals if to in a.rcpt_tos]


async def test_postfix_as_client_hands_its_dsn_parameters_to_mailhop(transport_factory: Any, receiver_factory: Any,
                                                                    postfix_factory: Any) -> None:
    # Postfix's sendmail -N success -V ENVID -> Postfix -> mailhop -> a receiver without DSN: mailhop
    # sends the relayed DSN, with what Postfix passed on.
    rx = receiver_factory(dsn=False)
    t = await transport_factory()
    await add_relay(t, rx)
    pf = postfix_factory(f"[127.0.0.1]:{t.port}")
    to = f"{uuid.uuid4().hex[:8]}@fabrikam.test"
    sent = await asyncio.to_thread(
        subprocess.run, ["/usr/sbin/sendmail", "-C", str(pf.conf), "-N", "success", "-V", "PF2026", "-f", SENDER, to],
        input=make_message(sender=SENDER, to=to), capture_output=True, timeout=30)
    assert sent.returncode == 0, sent.stderr
    [report] = await async_wait_for(lambda: reports_to_sender(rx, "PF2026"), what="mailhop's relayed DSN",
                                    timeout=60)
    status = delivery_status(report)
    assert "Original-Envelope-Id: PF2026" in status and "Action: relayed" in status
    assert f"Final-Recipient: rfc822; {to}" in status and f"Original-Recipient: rfc822; {to}" in status
    assert b"X-Mailhop-Internal-Message-Id" in report.data  # written by mailhop, not by Postfix
