"""POST /api/messages: an application's messages over HTTP, through the same receive path as SMTP.

A real service (its admin API on a loopback port, its receive path, its store) relays to an
aiosmtpd sink through a smart-host connector; the tests read what reached the sink, the
tracking log and the queues.  A submit-scope token may inject and nothing else.
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import json
from typing import Any

import httpx
import pytest

from mailhop.admin.api import MAX_BODY
from mailhop.admin.auth import token_hash
from tests.integration import test_admin_api
from tests.integration.test_admin_api import Api, _concrete, assert_error
from tests.support.sink import Sink
from tests.support.wait import async_wait_for

APP_TOKEN = "an-application-token-that-may-only-submit-0123456789"
# The admin API tests' fixtures (a running service, clients with full-control and read-only tokens).
api_factory, api = test_admin_api.api_factory, test_admin_api.api


@pytest.fixture
async def relay(api: Api, sink: Sink) -> Api:
    r = await api.full.post("/api/connectors", json={"Name": "Relay", "AddressSpaces": "*", "DNSRoutingEnabled": False,
                                                     "SmartHosts": [f"[127.0.0.1]:{sink.port}"]})
    assert r.status_code == 201, r.text
    await api.t.service.scheduler.watch.poll()
    await api.store.tokens.create("app1", token_hash(APP_TOKEN), "submit")
    return api


def app_client(target: Api) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=target.base_url, headers={"Authorization": f"Bearer {APP_TOKEN}"})


async def delivered(sink: Sink, count: int) -> list[Any]:
    await async_wait_for(lambda: len(sink.messages) >= count, what=f"{count} message(s) at the sink")
    await asyncio.sleep(0.2)  # nothing more comes
    return sink.messages


async def test_a_raw_message_is_stamped_committed_and_relayed(relay: Api, sink: Sink) -> None:
    content = "From: App <app@contoso.test>\nTo: bob@fabrikam.test\nSubject: Invoice 42\n\nYour invoice.\n"
    async with app_client(relay) as app:
        r = await app.post("/api/messages", json={"Sender": "app@contoso.test", "Recipients": ["bob@fabrikam.test"],
                                                  "Content": content})
    assert r.status_code == 202, r.text
    answer = r.json()
    assert answer["Atomicity"] == "PerMessage"
    [m] = answer["Messages"]
    assert m["Status"] == "Queued" and isinstance(m["InternalMessageId"], int)
    assert m["MessageId"].startswith("<") and m["MessageId"].endswith("@exch01.contoso.test>")  # added, as SMTP does
    assert m["Recipients"] == [{"Address": "bob@fabrikam.test", "Status": "Queued"}]
    [got] = await delivered(sink, 1)
    assert (got.mail_from, got.rcpt_tos) == ("app@contoso.test", ["bob@fabrikam.test"])
    assert b"\r\n" in got.data and b"\n" not in got.data.replace(b"\r\n", b"")  # bare LF made CRLF
    msg = got.message
    assert msg["Message-ID"] == m["MessageId"] and msg["Date"] and msg["Subject"] == "Invoice 42"
    assert "with HTTP" in msg["Received"] and "(authenticated as app1)" in msg["Received"]
    [receive] = [e for e in relay.t.tracking() if e["EventId"] == "RECEIVE"]
    assert receive["Source"] == "HTTP" and receive["InternalMessageId"] == m["InternalMessageId"]
    assert receive["ConnectorId"] == "HTTP Submission"


async def test_a_structured_message_is_composed_with_attachments_and_bcc_only_in_the_envelope(
        relay: Api, sink: Sink) -> None:
    pdf = b"%PDF-1.4 not really\x00\xff"
    body = {"From": "Billing <billing@contoso.test>", "To": ["Bob <bob@fabrikam.test>"], "Cc": ["carol@fabrikam.test"],
            "Bcc": ["audit@contoso.test"], "Subject": "Grüße", "TextBody": "Plain text", "HtmlBody": "<p>HTML</p>",
            "Headers": {"X-Campaign": "december", "Reply-To": "help@contoso.test"},
            "Attachments": [{"Name": "invoice.pdf", "ContentType": "application/pdf",
                             "Data": base64.b64encode(pdf).decode()}]}
    r = await relay.full.post("/api/messages", json=body)  # full-control tokens may submit too
    assert r.status_code == 202, r.text
    [m] = r.json()["Messages"]
    assert [x["Address"] for x in m["Recipients"]] == ["bob@fabrikam.test", "carol@fabrikam.test", "audit@contoso.test"]
    [got] = await delivered(sink, 1)
    assert got.mail_from == "billing@contoso.test"
    assert sorted(got.rcpt_tos) == ["audit@contoso.test", "bob@fabrikam.test", "carol@fabrikam.test"]
    msg = email.message_from_bytes(got.data, policy=email.policy.default)
    assert msg["Bcc"] is None and b"audit@contoso.test" not in got.data.split(b"\r\n\r\n", 1)[0].split(b"Received:")[0]
    assert msg["Subject"] == "Grüße" and msg["X-Campaign"] == "december" and msg["Reply-To"] == "help@contoso.test"
    assert msg.get_body(("plain",)).get_content().strip() == "Plain text"  # type: ignore[union-attr]
    assert msg.get_body(("html",)).get_content().strip() == "<p>HTML</p>"  # type: ignore[union-attr]
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == "invoice.pdf" and attachment.get_content() == pdf


@pytest.mark.parametrize(("body", "detail"), [
    ({"Sender": "app@contoso.test", "Recipients": ["not an address"], "Content": "Subject: x\r\n\r\nx\r\n"},
     "Recipients[0]: 'not an address' is not an e-mail address"),
    ({"Sender": "app@contoso.test", "Recipients": [], "Content": "x"}, "Recipients: List should have at least 1 item after validation, not 0"),
    ({"From": "app@contoso.test", "Subject": "nobody"}, "To: a message needs at least one recipient in To, Cc or Bcc"),
    ({"From": "app@contoso.test", "To": ["b@fabrikam.test"], "Headers": {"Bcc": "x@fabrikam.test"}},
     "Headers.Bcc: not a header field that may be set here"),
    ({"From": "app@contoso.test", "To": ["b@fabrikam.test"], "Headers": {"X-A": "1\r\nBcc: evil@fabrikam.test"}},
     "Headers.X-A: a header value may not hold a line break"),
    ({"From": "app@contoso.test", "To": ["b@fabrikam.test"], "Attachments": [{"Name": "a", "Data": "@@@"}]},
     "Attachments[0].Data: not base64"),
    ({"From": "app@contoso.test", "To": ["b@fabrikam.test"], "Surprise": 1}, "Surprise: Extra inputs are not permitted"),
    ([], "the request holds no message"),
    ("a string", "the request: a message is a JSON object"),
])
async def test_bad_input_is_a_400_naming_the_field_and_queues_nothing(relay: Api, sink: Sink, body: Any,
                                                                     detail: str) -> None:
    async with app_client(relay) as app:
        r = await app.post("/api/messages", json=body)
    assert_error(r, 400, detail)
    assert await relay.messages() == [] and not [e for e in relay.t.tracking() if e["EventId"] == "RECEIVE"]


async def test_one_bad_message_of_many_queues_none_of_them(relay: Api, sink: Sink) -> None:
    good = {"From": "app@contoso.test", "To": ["bob@fabrikam.test"], "Subject": "fine", "TextBody": "x"}
    bad = {**good, "To": ["bob@"]}
    async with app_client(relay) as app:
        r = await app.post("/api/messages", json=[good, good, bad, good])
        assert_error(r, 400, "[2].To[0]: 'bob@' is not an e-mail address")
        await asyncio.sleep(0.3)
        assert sink.messages == [] and await relay.messages() == []
        r = await app.post("/api/messages", json=[good] * 3)
    assert r.status_code == 202, r.text
    assert [m["Status"] for m in r.json()["Messages"]] == ["Queued"] * 3
    assert len({m["InternalMessageId"] for m in r.json()["Messages"]}) == 3
    assert len(await delivered(sink, 3)) == 3


async def test_at_most_1000_messages_and_a_bounded_body(relay: Api) -> None:
    one = {"Sender": "", "Recipients": ["bob@fabrikam.test"], "Content": "Subject: x\r\n\r\nx\r\n"}
    async with app_client(relay) as app:
        assert_error(await app.post("/api/messages", json=[one] * 1001),
                     400, "at most 1000 messages in one request, not 1001")
        # Streamed without a Content-Length, beyond the bound: refused while it comes in.
        async def chunks() -> Any:
            for _ in range(70):
                yield b"x" * (1024 * 1024)
        r = await app.post("/api/messages", content=chunks(), headers={"Content-Type": "application/json"})
        assert_error(r, 413, "the request body is larger than 67108864 bytes")
    # Every other route: 4 MiB, before the token is even looked at (FastAPI reads a body whole
    # first: an anonymous client could make the server hold any amount, then get its 401).
    for path in ("/api/connectors", "/api/session"):
        r = await relay.anon.post(path, content=b"{" + b" " * (MAX_BODY + 1) + b"}",
                                  headers={"Content-Type": "application/json"})
        assert_error(r, 413, f"the request body is larger than {MAX_BODY} bytes")


async def test_a_submit_token_may_submit_and_nothing_else(api: Api) -> None:
    await api.store.tokens.create("app1", token_hash(APP_TOKEN), "submit")
    relay = api
    calls = await _concrete(relay)
    before = await relay.snapshot()
    async with app_client(relay) as app:
        for (method, template), (path, kwargs) in calls.items():
            if (method, template) in (("POST", "/api/session"), ("POST", "/api/messages")):
                continue
            r = await app.request(method, path, **kwargs)
            assert r.status_code == 403, (method, template, r.status_code, r.text)
        assert await relay.snapshot() == before
        # ... and it opens no console session.
        r = await relay.anon.post("/api/session", json={"token": APP_TOKEN})
        assert_error(r, 403, "The token 'app1' may only submit messages: it opens no console")
    # A read-only token may not submit.
    r = await relay.reader.post("/api/messages", json={"Sender": "", "Recipients": ["b@fabrikam.test"],
                                                       "Content": "Subject: x\r\n\r\nx\r\n"})
    assert_error(r, 403, "The token 'reader' is read-only")


async def test_messages_are_signed_like_smtp_mail(relay: Api, sink: Sink) -> None:
    r = await relay.full.post("/api/dkim", json={"Domain": "contoso.test", "KeySize": 1024})
    assert r.status_code == 201, r.text
    await relay.t.service.keyring.refresh()
    async with app_client(relay) as app:
        r = await app.post("/api/messages", json={"From": "app@contoso.test", "To": ["bob@fabrikam.test"],
                                                  "Subject": "signed", "TextBody": "hello"})
    assert r.status_code == 202, r.text
    [got] = await delivered(sink, 1)
    assert len(got.message.get_all("DKIM-Signature", [])) == 2  # RSA and Ed25519, as for SMTP
    assert json.dumps(r.json())  # the answer is plain JSON
