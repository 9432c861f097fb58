"""The admin REST API over real HTTP on loopback, against a whole service in-process.

Every resource the CLI manages is driven through ``/api``: send connectors (keyed by
Exchange's names, secrets never shown), receive connectors, queues and messages,
message tracking, route explanations, servers, the dashboard and the header analyzer.
Then who may do what (tokens, read-only tokens, browser sessions with CSRF), and bad
input: every refusal must carry ``{"detail": ...}`` with the model's own one-line
message, and must leave everything as it was.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from mailhop.admin.auth import token_hash
from mailhop.delivery.tls import find_certificate
from mailhop.errors import ConfigError, ValidationError
from mailhop.model.connector import new_connector, to_exchange, update_connector
from mailhop.routing.router import Router
from mailhop.sealing import Sealer
from mailhop.tracking.search import parse_time
from tests.support.client import make_message, submit
from tests.support.net import free_port
from tests.support.sink import Sink
from tests.support.wait import async_wait_for

FULL_TOKEN = "full-control-token-" + "f" * 24
READ_TOKEN = "read-only-token-" + "r" * 24
SERVER = "EXCH01"

# Every operation of the API: (method, path template).  The OpenAPI document must list
# exactly these, and the refusal tests walk all of them.
OPERATIONS: list[tuple[str, str]] = [
    ("GET", "/api/session"),
    ("POST", "/api/session"),
    ("DELETE", "/api/session"),
    ("GET", "/api/connectors"),
    ("POST", "/api/connectors"),
    ("GET", "/api/connectors/{name}"),
    ("PATCH", "/api/connectors/{name}"),
    ("DELETE", "/api/connectors/{name}"),
    ("GET", "/api/receive-connectors"),
    ("GET", "/api/queues"),
    ("POST", "/api/queues/{queue}/retry"),
    ("POST", "/api/queues/{queue}/suspend"),
    ("POST", "/api/queues/{queue}/resume"),
    ("GET", "/api/messages"),
    ("POST", "/api/messages"),
    ("POST", "/api/messages/{message_id}/suspend"),
    ("POST", "/api/messages/{message_id}/resume"),
    ("DELETE", "/api/messages/{message_id}"),
    ("GET", "/api/tracking"),
    ("GET", "/api/route"),
    ("GET", "/api/servers"),
    ("POST", "/api/servers/{name}/drain"),
    ("POST", "/api/servers/{name}/resume"),
    ("POST", "/api/headers/analyze"),
    ("GET", "/api/dashboard"),
    ("GET", "/api/dkim"),
    ("POST", "/api/dkim"),
    ("GET", "/api/dkim/{domain}"),
    ("PATCH", "/api/dkim/{domain}"),
    ("DELETE", "/api/dkim/{domain}"),
    ("POST", "/api/dkim/{domain}/check"),
    ("POST", "/api/dkim/{domain}/rotate"),
    ("GET", "/api/domains/{domain}/readiness"),
    ("GET", "/api/domains/{domain}/tls"),
]
WRITES = {
    ("POST", "/api/messages"),
    ("POST", "/api/connectors"),
    ("PATCH", "/api/connectors/{name}"),
    ("DELETE", "/api/connectors/{name}"),
    ("POST", "/api/queues/{queue}/retry"),
    ("POST", "/api/queues/{queue}/suspend"),
    ("POST", "/api/queues/{queue}/resume"),
    ("POST", "/api/messages/{message_id}/suspend"),
    ("POST", "/api/messages/{message_id}/resume"),
    ("DELETE", "/api/messages/{message_id}"),
    ("POST", "/api/servers/{name}/drain"),
    ("POST", "/api/servers/{name}/resume"),
    ("POST", "/api/dkim"),
    ("PATCH", "/api/dkim/{domain}"),
    ("DELETE", "/api/dkim/{domain}"),
    ("POST", "/api/dkim/{domain}/check"),  # it records what DNS said (and may switch selectors)
    ("POST", "/api/dkim/{domain}/rotate"),
}

HEADER_BLOCK = (
    "Received: from mx.fabrikam.test (mx.fabrikam.test [192.0.2.10])\r\n"
    "\tby exch01.contoso.test (mailhop) with ESMTP id 42; Sat, 28 Nov 2026 09:30:07 +0000\r\n"
    "Received: from client.fabrikam.test ([192.0.2.20])\r\n"
    "\tby mx.fabrikam.test with ESMTPSA; Sat, 28 Nov 2026 09:30:02 +0000\r\n"
    "From: Bob <bob@fabrikam.test>\r\n"
    "To: Alice <alice@contoso.test>\r\n"
    "Subject: Hops\r\n"
    "Date: Sat, 28 Nov 2026 09:30:00 +0000\r\n"
    "Message-ID: <hops-1@fabrikam.test>\r\n"
)


@dataclass
class Api:
    """A running service and HTTP clients for it: full-control, read-only, anonymous."""

    t: Any
    base_url: str
    full: httpx.AsyncClient
    reader: httpx.AsyncClient
    anon: httpx.AsyncClient

    @property
    def store(self) -> Any:
        return self.t.store

    async def json(self, path: str, client: httpx.AsyncClient | None = None, **params: Any) -> Any:
        r = await (client or self.full).get(path, params=params or None)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    async def connectors(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = await self.json("/api/connectors")
        return data

    async def messages(self, queue: str | None = None) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = await (self.json("/api/messages", queue=queue) if queue else self.json("/api/messages"))
        return data

    async def queue(self, name: str) -> dict[str, Any] | None:
        return next((q for q in await self.json("/api/queues") if q["Identity"].lower() == name.lower()), None)

    async def snapshot(self, client: httpx.AsyncClient | None = None) -> dict[str, Any]:
        """What a refused request must leave as it was (without fields that move on their own)."""
        return {
            "connectors": await self.json("/api/connectors", client),
            "queues": [(q["Identity"], q["Status"], q["MessageCount"]) for q in await self.json("/api/queues", client)],
            "messages": [(m["Identity"], m["Queue"], m["Status"], [(r["Address"], r["Status"]) for r in m["Recipients"]])
                         for m in await self.json("/api/messages", client)],
            "servers": [(s["Name"], s["RequestedState"]) for s in await self.json("/api/servers", client)],
            "tokens": [(tk.name, tk.read_only) for tk in await self.store.tokens.list()],
            "dkim": await self.json("/api/dkim", client),
        }


@pytest.fixture
async def api_factory(transport_factory: Any) -> AsyncIterator[Callable[..., Any]]:
    clients: list[httpx.AsyncClient] = []

    async def start(**sections: Any) -> Api:
        t = await transport_factory(**sections)
        await t.store.tokens.create("full", token_hash(FULL_TOKEN), "full")
        await t.store.tokens.create("reader", token_hash(READ_TOKEN), "read")
        base_url = f"http://{t.service.settings.admin.bind}"
        full = httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {FULL_TOKEN}"})
        reader = httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {READ_TOKEN}"})
        anon = httpx.AsyncClient(base_url=base_url)
        clients.extend((full, reader, anon))
        return Api(t, base_url, full, reader, anon)

    yield start
    for client in clients:
        await client.aclose()


@pytest.fixture
async def api(api_factory: Callable[..., Any]) -> Api:
    made: Api = await api_factory()
    return made


def model_error(values: dict[str, Any]) -> str:
    """The one-line message the model raises for these connector values."""
    with pytest.raises(ValidationError) as info:
        new_connector(values, default_server=SERVER)
    return str(info.value)


def assert_error(r: httpx.Response, status: int, detail: str | None = None) -> None:
    assert r.status_code == status, (r.request.method, str(r.request.url), r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str) and body["detail"], body
    assert "\n" not in body["detail"]
    if detail is not None:
        assert body["detail"] == detail


async def park_unreachable(api: Api, sender: str = "alice@contoso.test", to: str = "bob@fabrikam.test") -> int:
    """Submit a message no connector matches; wait until it waits in the Unreachable queue."""
    # Apply connector changes made just before now: the scheduler's own poll would otherwise
    # resubmit the parked message a moment later, under the caller's feet.
    await api.t.service.scheduler.watch.poll()
    sent = await submit(api.t.port, sender, [to])

    async def parked() -> bool:
        return any(m["Identity"] == sent.queue_id for m in await api.messages("Unreachable"))

    await async_wait_for(parked, what="the message in the Unreachable queue")
    return sent.queue_id


# --- send connectors ---------------------------------------------------------------------------


async def test_send_connector_create_get_update_delete(api: Api) -> None:
    assert await api.connectors() == []
    values = {"Name": "Smart Relay", "Usage": "Internet", "AddressSpaces": ["fabrikam.test;5", "*.fabrikam.test"],
              "DNSRoutingEnabled": False, "SmartHosts": ["relay.contoso.test:587"], "Comment": "made over HTTP"}
    r = await api.full.post("/api/connectors", json=values)
    assert r.status_code == 201, r.text
    created = r.json()
    # The same object the model (and so the CLI) makes, keyed by Exchange's names.
    expected = to_exchange(new_connector(values, default_server=SERVER))
    expected["Guid"] = created["Guid"]
    assert created == expected
    assert created["Identity"] == "Smart Relay"
    assert created["AddressSpaces"] == ["SMTP:fabrikam.test;5", "SMTP:*.fabrikam.test;1"]
    assert created["SmartHosts"] == ["relay.contoso.test:587"]
    assert created["SourceTransportServers"] == [SERVER] and created["Enabled"] is True
    assert (await api.store.connectors.get("Smart Relay")).guid == created["Guid"]

    assert await api.connectors() == [created]
    r = await api.full.get("/api/connectors/smart relay")  # names are case-insensitive, as in Exchange
    assert r.status_code == 200 and r.json() == created
    route = await api.json("/api/route", recipient="bob@fabrikam.test")
    assert route["Connector"] == "Smart Relay"

    r = await api.full.patch("/api/connectors/Smart Relay", json={"Enabled": False})
    assert r.status_code == 200, r.text
    assert r.json() == {**created, "Enabled": False}
    assert (await api.full.get("/api/connectors/Smart Relay")).json()["Enabled"] is False
    assert (await api.store.connectors.get("Smart Relay")).enabled is False
    route = await api.json("/api/route", recipient="bob@fabrikam.test")
    assert route["Connector"] is None and route["Queue"] == "Unreachable"  # a disabled connector is ignored

    r = await api.full.patch("/api/connectors/Smart Relay", json={"Enabled": "true", "Name": "Relay Two", "Port": 2525})
    assert r.status_code == 200, r.text
    renamed = r.json()
    assert (renamed["Identity"], renamed["Enabled"], renamed["Port"], renamed["Guid"]) == ("Relay Two", True, 2525, created["Guid"])
    assert_error(await api.full.get("/api/connectors/Smart Relay"), 404)

    r = await api.full.delete("/api/connectors/relay two")
    assert r.status_code == 200 and r.json() == {"Identity": "Relay Two", "Removed": True}
    assert await api.connectors() == []
    assert_error(await api.full.get("/api/connectors/Relay Two"), 404)


def sealed_by(api: Api) -> Sealer:
    return Sealer(api.t.service.settings.server.secret_key_path)


async def test_connector_password_is_stored_and_never_shown(api: Api) -> None:
    password = "Pa55-never-shown-" + hashlib.sha256(b"x").hexdigest()[:12]
    values = {"Name": "Authenticated Relay", "AddressSpaces": "*", "DNSRoutingEnabled": False,
              "SmartHosts": "[192.0.2.25]:587", "SmartHostAuthMechanism": "BasicAuthRequireTLS",
              "AuthenticationCredential": "relay-user", "Password": password}
    responses = [await api.full.post("/api/connectors", json=values)]
    assert responses[0].status_code == 201, responses[0].text
    created = responses[0].json()
    assert created["SmartHostAuthMechanism"] == "BasicAuthRequireTLS"
    assert created["AuthenticationCredential"] == "relay-user"

    async def stored() -> str:
        sealed = await api.store.connectors.secret(created["Guid"])
        assert sealed.startswith("fernet:") and password not in sealed and new_password not in sealed
        return sealed_by(api).open(sealed)

    new_password = "Second-secret-" + hashlib.sha256(b"y").hexdigest()[:12]
    assert await stored() == password

    responses += [
        await api.full.get("/api/connectors"),
        await api.full.get("/api/connectors/Authenticated Relay"),
        await api.reader.get("/api/connectors"),
        await api.full.patch("/api/connectors/Authenticated Relay", json={"Comment": "rotated", "Password": new_password}),
        await api.full.get("/api/connectors/Authenticated Relay"),
        await api.full.get("/api/route", params={"recipient": "bob@fabrikam.test"}),
        await api.full.get("/api/dashboard"),
    ]
    assert await stored() == new_password
    # Changing something else keeps the secret.
    responses.append(await api.full.patch("/api/connectors/Authenticated Relay", json={"Port": 587}))
    assert await stored() == new_password
    responses.append(await api.full.delete("/api/connectors/Authenticated Relay"))
    for r in responses:
        assert r.status_code in (200, 201), (str(r.request.url), r.status_code, r.text)
        for secret in (password, new_password):
            assert secret not in r.text, f"secret leaked by {r.request.method} {r.request.url}"
        body = r.json()
        for item in body if isinstance(body, list) else [body]:
            assert "Password" not in item


async def test_receive_connectors_are_read_from_the_configuration(api: Api) -> None:
    [rc] = api.t.service.settings.receive_connectors
    for client in (api.full, api.reader):
        r = await client.get("/api/receive-connectors")
        assert r.status_code == 200, r.text
        assert r.json() == [{
            "Identity": "Client Relay EXCH01", "Bindings": [rc.bind], "RemoteIPRanges": ["127.0.0.0/8"],
            "MaxMessageSize": rc.max_message_size, "MaxRecipientsPerMessage": rc.max_recipients_per_message,
            "Fqdn": "exch01.contoso.test", "RequireTLS": False, "TlsCertificate": None, "AuthMechanism": "None",
            "ProtocolLoggingLevel": "None", "Server": SERVER,
        }]


# --- queues and messages -------------------------------------------------------------------------


async def test_unreachable_message_suspend_resume_and_remove_without_ndr(api: Api) -> None:
    message_id = await park_unreachable(api)
    unreachable = await api.queue("Unreachable")
    assert unreachable is not None and unreachable["MessageCount"] == 1
    assert unreachable["DeliveryType"] == "Unreachable" and unreachable["NextHopDomain"] == "Unreachable Domain"
    [message] = await api.messages("Unreachable")
    assert message["FromAddress"] == "alice@contoso.test" and message["Queue"] == "Unreachable"
    assert [r["Address"] for r in message["Recipients"]] == ["bob@fabrikam.test"]
    assert "connector" in (message["LastError"] or "")

    r = await api.full.post(f"/api/messages/{message_id}/suspend")
    assert r.status_code == 200 and r.json() == {"Identity": message_id, "Status": "Suspended", "Recipients": 1}
    [message] = await api.messages()
    assert message["Status"] == "Suspended" and message["Recipients"][0]["Status"] == "Suspended"

    r = await api.full.post(f"/api/messages/{message_id}/resume")
    assert r.status_code == 200 and r.json() == {"Identity": message_id, "Status": "Resumed", "Recipients": 1}
    [message] = await api.messages()
    assert message["Status"] != "Suspended"

    r = await api.full.delete(f"/api/messages/{message_id}")
    assert r.status_code == 200, r.text
    assert r.json() == {"Identity": message_id, "Removed": ["bob@fabrikam.test"], "NdrSent": False}
    assert await api.messages() == []
    queue = await api.queue("Unreachable")
    assert queue is not None and queue["MessageCount"] == 0

    async def removal_tracked() -> list[Any]:
        return await api.json("/api/tracking", internal_message_id=message_id, event="FAIL")

    [fail] = await async_wait_for(removal_tracked, what="the FAIL event of the removal")
    assert fail["Source"] == "ADMIN" and fail["Recipients"] == ["bob@fabrikam.test"]
    assert await api.json("/api/tracking", event="DSN") == []
    # Removed means gone: a second removal has nothing to act on.
    assert_error(await api.full.delete(f"/api/messages/{message_id}"), 404)


async def test_remove_message_with_ndr_sends_a_failure_notice(api: Api) -> None:
    message_id = await park_unreachable(api)
    r = await api.full.delete(f"/api/messages/{message_id}", params={"ndr": "true"})
    assert r.status_code == 200, r.text
    assert r.json() == {"Identity": message_id, "Removed": ["bob@fabrikam.test"], "NdrSent": True}

    async def ndr() -> list[dict[str, Any]]:
        return [m for m in await api.messages() if m["FromAddress"] == "<>"]

    # No connector matches the sender either, so the NDR itself waits in Unreachable.
    [notice] = await async_wait_for(ndr, what="the NDR in a queue")
    assert notice["Identity"] != message_id
    assert [x["Address"] for x in notice["Recipients"]] == ["alice@contoso.test"]
    assert all(m["Identity"] != message_id for m in await api.messages())

    async def dsn_tracked() -> list[Any]:
        return await api.json("/api/tracking", internal_message_id=message_id, event="DSN")

    [dsn] = await async_wait_for(dsn_tracked, what="the DSN event")
    assert dsn["RelatedInternalMessageId"] == notice["Identity"]
    assert dsn["RecipientStatus"][0].startswith("550 4.3.2")


async def test_queue_in_retry_can_be_suspended_retried_and_resumed(api: Api) -> None:
    closed = free_port()
    r = await api.full.post("/api/connectors", json={"Name": "Dead Relay", "AddressSpaces": "*",
                                                      "DNSRoutingEnabled": False, "SmartHosts": f"[127.0.0.1]:{closed}"})
    assert r.status_code == 201, r.text
    await submit(api.t.port, "alice@contoso.test", ["bob@fabrikam.test"])

    async def in_retry() -> dict[str, Any] | None:
        q = await api.queue("Dead Relay")
        return q if q and q["Status"] == "Retry" and q["MessageCount"] == 1 else None

    queue = await async_wait_for(in_retry, what="the queue to go to Retry")
    assert queue["DeliveryType"] == "SmartHostConnectorDelivery" and queue["NextHopConnector"] == "Dead Relay"
    assert "127.0.0.1" in queue["LastError"] and queue["RetryCount"] >= 1

    r = await api.full.post("/api/queues/Dead Relay/suspend")
    assert r.status_code == 200 and r.json() == {"Identity": "Dead Relay", "Status": "Suspended"}
    q = await api.queue("Dead Relay")
    assert q is not None and q["Status"] == "Suspended"

    async def waiting() -> bool:
        [m] = await api.messages("Dead Relay")
        return bool(m["Recipients"][0]["Status"] == "Retry")

    await async_wait_for(waiting, what="the recipient to wait for its retry")
    # Exchange's Server\Queue identity is accepted too.
    r = await api.full.post("/api/queues/EXCH01\\Dead Relay/retry")
    assert r.status_code == 200, r.text
    assert r.json() == {"Identity": "Dead Relay", "RecipientsRetried": 1}

    r = await api.full.post("/api/queues/dead relay/resume")
    assert r.status_code == 200 and r.json() == {"Identity": "Dead Relay", "Status": "Ready"}
    q = await api.queue("Dead Relay")
    assert q is not None and q["Status"] != "Suspended"

    # The special queues exist even when empty and can be steered too.
    r = await api.full.post("/api/queues/Submission/suspend")
    assert r.status_code == 200 and r.json() == {"Identity": "Submission", "Status": "Suspended"}
    r = await api.full.post("/api/queues/Submission/resume")
    assert r.status_code == 200 and r.json() == {"Identity": "Submission", "Status": "Ready"}


# --- tracking, routing, servers, dashboard, headers -----------------------------------------------


async def test_tracking_follows_one_message_from_receive_to_send(api: Api, sink: Sink) -> None:
    r = await api.full.post("/api/connectors", json={"Name": "To Sink", "AddressSpaces": "fabrikam.test",
                                                      "DNSRoutingEnabled": False, "SmartHosts": f"[127.0.0.1]:{sink.port}"})
    assert r.status_code == 201, r.text
    sent = await submit(api.t.port, "alice@contoso.test", ["bob@fabrikam.test"],
                        make_message(subject="Tracked over HTTP", headers={"Message-ID": "<tracked-1@contoso.test>"}))
    await async_wait_for(lambda: sink.for_recipient("bob@fabrikam.test"), what="delivery to the sink")

    async def sent_event() -> list[Any]:
        return await api.json("/api/tracking", internal_message_id=sent.queue_id, event="SEND")

    await async_wait_for(sent_event, what="the SEND event")
    events = await api.json("/api/tracking", internal_message_id=sent.queue_id)
    kinds = [e["EventId"] for e in events]
    assert kinds[0] == "RECEIVE" and kinds[-1] == "SEND", kinds
    receive, send = events[0], events[-1]
    assert receive["ConnectorId"] == "Client Relay EXCH01" and send["ConnectorId"] == "To Sink"
    assert send["Recipients"] == ["bob@fabrikam.test"] and send["RecipientStatus"][0].startswith("250")
    assert {e["MessageId"] for e in events} == {"<tracked-1@contoso.test>"}

    for query in ({"message_id": "tracked-1@contoso.test"}, {"message_id": "<tracked-1@contoso.test>"},
                  {"sender": "ALICE@contoso.test"}, {"recipient": "bob@fabrikam.test"},
                  {"subject": "over http"}, {"start": "1h"}):
        found = await api.json("/api/tracking", **query)
        assert [e["EventId"] for e in found if e.get("InternalMessageId") == sent.queue_id] == kinds, query
    assert await api.json("/api/tracking", recipient="nobody@fabrikam.test") == []
    assert await api.json("/api/tracking", end="2000-01-01") == []
    assert len(await api.json("/api/tracking", result_size=1)) == 1
    # The reader token may trace.
    r = await api.reader.get("/api/tracking", params={"internal_message_id": sent.queue_id})
    assert r.status_code == 200 and [e["EventId"] for e in r.json()] == kinds


async def test_route_explains_which_connector_a_recipient_takes(api: Api) -> None:
    for values in ({"Name": "Fabrikam Partner", "Usage": "Partner", "AddressSpaces": "fabrikam.test",
                    "DNSRoutingEnabled": False, "SmartHosts": "mx.fabrikam.test", "TlsDomain": "mx.fabrikam.test"},
                   {"Name": "Internet", "AddressSpaces": "*"}):
        r = await api.full.post("/api/connectors", json=values)
        assert r.status_code == 201, r.text
    router = Router(await api.store.connectors.list(), SERVER)

    partner = await api.json("/api/route", recipient="bob@fabrikam.test", sender="alice@contoso.test", size=1000)
    assert partner == {"Recipient": "bob@fabrikam.test", "Sender": "alice@contoso.test", "Size": 1000,
                       "Server": SERVER, **router.route("bob@fabrikam.test", "alice@contoso.test", 1000).to_json()}
    assert partner["Connector"] == "Fabrikam Partner"
    assert partner["DeliveryType"] == "SmartHostConnectorDelivery" and partner["Queue"] == "Fabrikam Partner"

    internet = await api.json("/api/route", recipient="carol@northwind.test")
    assert (internet["Connector"], internet["DeliveryType"], internet["Queue"]) == ("Internet", "DnsConnectorDelivery", "northwind.test")
    assert internet["Sender"] is None and internet["Reason"]

    r = await api.full.patch("/api/connectors/Internet", json={"Enabled": False})
    assert r.status_code == 200, r.text
    nowhere = await api.json("/api/route", recipient="carol@northwind.test")
    assert (nowhere["Connector"], nowhere["DeliveryType"], nowhere["Queue"]) == (None, "Unreachable", "Unreachable")

    before = await api.snapshot()
    assert_error(await api.full.get("/api/route", params={"recipient": "carol"}), 400, "'carol' is not an email address")
    assert_error(await api.full.get("/api/route"), 400)
    assert_error(await api.full.get("/api/route", params={"recipient": "a@b.test", "size": -1}), 400)
    assert await api.snapshot() == before


async def test_servers_list_drain_and_resume(api: Api) -> None:
    [server] = await api.json("/api/servers")
    assert (server["Name"], server["Fqdn"], server["State"], server["RequestedState"]) == (
        SERVER, "exch01.contoso.test", "Active", "Active")

    r = await api.full.post("/api/servers/exch01/drain")
    assert r.status_code == 200 and r.json() == {"Name": SERVER, "RequestedState": "Draining"}
    [server] = await api.json("/api/servers")
    assert server["RequestedState"] == "Draining" and server["State"].startswith("Draining")

    r = await api.full.post(f"/api/servers/{SERVER}/resume")
    assert r.status_code == 200 and r.json() == {"Name": SERVER, "RequestedState": "Active"}

    async def active() -> bool:
        [s] = await api.json("/api/servers")
        return bool(s["RequestedState"] == "Active" and s["State"] == "Active")

    await async_wait_for(active, what="the server to be Active again")
    before = await api.snapshot()
    assert_error(await api.full.post("/api/servers/EXCH99/drain"), 404,
                 "The transport server 'EXCH99' has never run with this store")
    assert_error(await api.full.post("/api/servers/EXCH99/resume"), 404)
    assert await api.snapshot() == before


async def test_dashboard_numbers_move_when_mail_flows(api: Api, sink: Sink) -> None:
    before = await api.json("/api/dashboard")
    assert (before["WindowSeconds"], before["BucketSeconds"]) == (3600, 300)
    assert before["Totals"] == {"Received": 0, "Delivered": 0, "Deferred": 0, "Failed": 0}
    assert before["QueueDepth"] == 0 and before["OldestMessageAgeSeconds"] is None
    assert len(before["Buckets"]) in (12, 13)

    r = await api.full.post("/api/connectors", json={"Name": "To Sink", "AddressSpaces": "fabrikam.test",
                                                      "DNSRoutingEnabled": False, "SmartHosts": f"[127.0.0.1]:{sink.port}"})
    assert r.status_code == 201, r.text
    await submit(api.t.port, "alice@contoso.test", ["bob@fabrikam.test"])
    await async_wait_for(lambda: sink.messages, what="delivery to the sink")
    await park_unreachable(api, to="carol@northwind.test")

    async def moved() -> dict[str, Any] | None:
        d: dict[str, Any] = await api.json("/api/dashboard")
        return d if d["Totals"]["Received"] == 2 and d["Totals"]["Delivered"] == 1 else None

    after = await async_wait_for(moved, what="the dashboard to count the mail")
    assert after["QueueDepth"] == 1
    assert {"Identity": "Unreachable", "MessageCount": 1, "Status": "Ready"} in after["Queues"]
    assert isinstance(after["OldestMessageAgeSeconds"], int | float) and after["OldestMessageAgeSeconds"] >= 0
    for outcome in ("Received", "Delivered", "Deferred", "Failed"):
        assert sum(b[outcome] for b in after["Buckets"]) == after["Totals"][outcome]
    r = await api.reader.get("/api/dashboard")
    assert r.status_code == 200 and r.json()["Totals"]["Delivered"] == 1


async def test_header_analysis(api: Api) -> None:
    for client in (api.full, api.reader):
        r = await client.post("/api/headers/analyze", json={"headers": HEADER_BLOCK})
        assert r.status_code == 200, r.text
        result = r.json()
        assert {"Hops", "TotalDelay"} <= set(result), result
    before = await api.snapshot()
    assert_error(await api.full.post("/api/headers/analyze", json={"headers": ""}), 400)
    assert_error(await api.full.post("/api/headers/analyze", json={}), 400)
    assert await api.snapshot() == before


# --- who may do what -----------------------------------------------------------------------------


async def _concrete(api: Api) -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
    """Each operation with values that exist, so a refusal can only come from who is asking."""
    r = await api.full.post("/api/connectors", json={"Name": "Relay", "AddressSpaces": "fabrikam.test",
                                                      "DNSRoutingEnabled": False, "SmartHosts": "relay.contoso.test"})
    assert r.status_code == 201, r.text
    message_id = await park_unreachable(api, to="carol@northwind.test")
    r = await api.full.post("/api/dkim", json={"Domain": "contoso.test", "KeySize": 1024})
    assert r.status_code == 201, r.text
    dkim = "/api/dkim/contoso.test"
    return {
        ("GET", "/api/session"): ("/api/session", {}),
        ("POST", "/api/session"): ("/api/session", {"json": {"token": "not-a-token"}}),
        ("DELETE", "/api/session"): ("/api/session", {}),
        ("GET", "/api/connectors"): ("/api/connectors", {}),
        ("POST", "/api/connectors"): ("/api/connectors", {"json": {"Name": "Another", "AddressSpaces": "*"}}),
        ("GET", "/api/connectors/{name}"): ("/api/connectors/Relay", {}),
        ("PATCH", "/api/connectors/{name}"): ("/api/connectors/Relay", {"json": {"Enabled": False}}),
        ("DELETE", "/api/connectors/{name}"): ("/api/connectors/Relay", {}),
        ("GET", "/api/receive-connectors"): ("/api/receive-connectors", {}),
        ("GET", "/api/queues"): ("/api/queues", {}),
        ("POST", "/api/queues/{queue}/retry"): ("/api/queues/Unreachable/retry", {}),
        ("POST", "/api/queues/{queue}/suspend"): ("/api/queues/Unreachable/suspend", {}),
        ("POST", "/api/queues/{queue}/resume"): ("/api/queues/Unreachable/resume", {}),
        ("GET", "/api/messages"): ("/api/messages", {}),
        ("POST", "/api/messages"): ("/api/messages", {"json": {"Sender": "app@contoso.test", "Recipients": [
            "bob@fabrikam.test"], "Content": "Subject: from an application\r\n\r\nhi\r\n"}}),
        ("POST", "/api/messages/{message_id}/suspend"): (f"/api/messages/{message_id}/suspend", {}),
        ("POST", "/api/messages/{message_id}/resume"): (f"/api/messages/{message_id}/resume", {}),
        ("DELETE", "/api/messages/{message_id}"): (f"/api/messages/{message_id}", {"params": {"ndr": "true"}}),
        ("GET", "/api/tracking"): ("/api/tracking", {}),
        ("GET", "/api/route"): ("/api/route", {"params": {"recipient": "bob@fabrikam.test"}}),
        ("GET", "/api/servers"): ("/api/servers", {}),
        ("POST", "/api/servers/{name}/drain"): (f"/api/servers/{SERVER}/drain", {}),
        ("POST", "/api/servers/{name}/resume"): (f"/api/servers/{SERVER}/resume", {}),
        ("POST", "/api/headers/analyze"): ("/api/headers/analyze", {"json": {"headers": HEADER_BLOCK}}),
        ("GET", "/api/dashboard"): ("/api/dashboard", {}),
        ("GET", "/api/dkim"): ("/api/dkim", {}),
        ("POST", "/api/dkim"): ("/api/dkim", {"json": {"Domain": "fabrikam.test", "KeySize": 1024}}),
        ("GET", "/api/dkim/{domain}"): (dkim, {}),
        ("PATCH", "/api/dkim/{domain}"): (dkim, {"json": {"Enabled": False}}),
        ("DELETE", "/api/dkim/{domain}"): (dkim, {}),
        ("POST", "/api/dkim/{domain}/check"): (f"{dkim}/check", {}),
        ("POST", "/api/dkim/{domain}/rotate"): (f"{dkim}/rotate", {"json": {"KeySize": 1024}}),
        ("GET", "/api/domains/{domain}/readiness"): ("/api/domains/contoso.test/readiness",
                                                     {"params": {"ip": "127.0.0.1"}}),
        ("GET", "/api/domains/{domain}/tls"): ("/api/domains/fabrikam.test/tls", {}),
    }


async def test_every_route_refuses_a_missing_or_wrong_token(api: Api) -> None:
    calls = await _concrete(api)
    assert set(calls) == set(OPERATIONS)
    before = await api.snapshot()
    wrong = {
        "no token": {},
        "wrong token": {"Authorization": "Bearer not-the-token"},
        "token of another case": {"Authorization": f"Bearer {FULL_TOKEN.upper()}"},
        # What the store keeps must not open the API itself.
        "stored hash": {"Authorization": f"Bearer {token_hash(FULL_TOKEN)}"},
        "not a bearer": {"Authorization": f"Basic {FULL_TOKEN}"},
        "bare bearer": {"Authorization": "Bearer"},
        "unknown cookie": {"Cookie": "mailhop_session=forged"},
    }
    for (method, template), (path, kwargs) in calls.items():
        for label, headers in wrong.items():
            r = await api.anon.request(method, path, headers=headers, **kwargs)
            assert_error(r, 401)
            assert "set-cookie" not in r.headers, (method, template, label)
    assert await api.snapshot() == before


async def test_read_only_token_reads_but_cannot_change_anything(api: Api) -> None:
    calls = await _concrete(api)
    before = await api.snapshot()
    for (method, template), (path, kwargs) in calls.items():
        if (method, template) == ("POST", "/api/session") or template == "/api/headers/analyze":
            continue  # sign-in takes the token in its body; header analysis is covered on its own
        r = await api.reader.request(method, path, **kwargs)
        if (method, template) in WRITES:
            assert_error(r, 403, "The token 'reader' is read-only")
        else:
            assert r.status_code == 200, (method, template, r.status_code, r.text)
    assert await api.snapshot() == before
    who = (await api.reader.get("/api/session")).json()
    assert who == {"Name": "reader", "Scope": "read", "ReadOnly": True, "CsrfToken": None}


async def test_browser_session_needs_the_csrf_token_to_change_things(api: Api) -> None:
    await api.full.post("/api/connectors", json={"Name": "Relay", "AddressSpaces": "*"})
    browser = httpx.AsyncClient(base_url=api.base_url)
    try:
        r = await browser.post("/api/session", json={"token": FULL_TOKEN})
        assert r.status_code == 200, r.text
        signed_in = r.json()
        assert signed_in["Name"] == "full" and signed_in["ReadOnly"] is False
        csrf = signed_in["CsrfToken"]
        assert isinstance(csrf, str) and len(csrf) >= 16
        cookie = r.headers["set-cookie"]
        attributes = {a.strip().split("=")[0].lower(): a.strip() for a in cookie.split(";")}
        assert cookie.startswith("mailhop_session=")
        assert "httponly" in attributes and attributes["samesite"].lower() == "samesite=strict"
        assert attributes["path"] == "Path=/"
        session_id = browser.cookies["mailhop_session"]
        assert session_id and FULL_TOKEN not in cookie and csrf not in cookie

        # Reads work with the cookie alone.
        r = await browser.get("/api/connectors")
        assert r.status_code == 200 and [c["Identity"] for c in r.json()] == ["Relay"]
        assert (await browser.get("/api/session")).json() == {"Name": "full", "Scope": "full", "ReadOnly": False, "CsrfToken": csrf}

        # Changes need X-CSRF-Token; without it (or with a wrong one) nothing happens.
        before = await api.snapshot()
        assert_error(await browser.delete("/api/connectors/Relay"), 403, "Missing or wrong X-CSRF-Token for this session")
        assert_error(await browser.delete("/api/connectors/Relay", headers={"X-CSRF-Token": csrf[:-1] + ("y" if csrf.endswith("x") else "x")}), 403)
        assert_error(await browser.delete("/api/connectors/Relay", headers={"X-CSRF-Token": ""}), 403)
        assert_error(await browser.post("/api/connectors", json={"Name": "Other", "AddressSpaces": "*"}), 403)
        assert_error(await browser.post(f"/api/servers/{SERVER}/drain"), 403)
        assert await api.snapshot() == before

        r = await browser.delete("/api/connectors/Relay", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200 and r.json() == {"Identity": "Relay", "Removed": True}
        assert await api.connectors() == []

        # Signing out ends the session: the old cookie opens nothing.
        r = await browser.delete("/api/session")
        assert r.status_code == 200 and r.json() == {"SignedOut": True}
        assert "mailhop_session" not in browser.cookies
        replay = await api.anon.get("/api/connectors", headers={"Cookie": f"mailhop_session={session_id}"})
        assert_error(replay, 401)
    finally:
        await browser.aclose()


async def test_removing_the_token_ends_its_sessions(api: Api) -> None:
    browser = httpx.AsyncClient(base_url=api.base_url)
    try:
        r = await browser.post("/api/session", json={"token": FULL_TOKEN})
        assert r.status_code == 200, r.text
        session_id = browser.cookies["mailhop_session"]
        assert (await browser.get("/api/queues")).status_code == 200

        await api.store.tokens.delete("full")
        assert_error(await browser.get("/api/queues"), 401)
        assert_error(await api.full.get("/api/queues"), 401)
        replay = await api.anon.get("/api/queues", headers={"Cookie": f"mailhop_session={session_id}"})
        assert_error(replay, 401)
    finally:
        await browser.aclose()


async def test_a_new_token_with_the_same_name_does_not_revive_old_sessions(api: Api) -> None:
    """A session lives only as long as the token it was opened with, not as long as a token of that name."""
    browser = httpx.AsyncClient(base_url=api.base_url)
    try:
        r = await browser.post("/api/session", json={"token": FULL_TOKEN})
        assert r.status_code == 200, r.text
        csrf = r.json()["CsrfToken"]
        await api.store.tokens.delete("full")
        assert_error(await browser.get("/api/queues"), 401)

        # The administrator issues a fresh token under the same name (e.g. after a leak).
        await api.store.tokens.create("full", token_hash("a-brand-new-secret-token-value"), "full")
        before = await api.snapshot(api.reader)
        assert_error(await browser.get("/api/queues"), 401)
        assert_error(await browser.post(f"/api/servers/{SERVER}/drain", headers={"X-CSRF-Token": csrf}), 401)
        assert await api.snapshot(api.reader) == before
    finally:
        await browser.aclose()


async def test_sign_in_refusals_and_read_only_sessions(api: Api) -> None:
    r = await api.anon.post("/api/session", json={"token": "not-a-token"})
    assert_error(r, 401, "This token is not valid")
    assert "set-cookie" not in r.headers
    assert_error(await api.anon.post("/api/session", json={"token": token_hash(FULL_TOKEN)}), 401)
    assert_error(await api.anon.post("/api/session", json={}), 400)
    assert_error(await api.anon.post("/api/session", json={"token": ""}), 400)
    assert_error(await api.anon.post("/api/session", content=b"token=abc",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"}), 400)

    await api.full.post("/api/connectors", json={"Name": "Relay", "AddressSpaces": "*"})
    browser = httpx.AsyncClient(base_url=api.base_url)
    try:
        r = await browser.post("/api/session", json={"token": READ_TOKEN})
        assert r.status_code == 200 and r.json()["ReadOnly"] is True
        csrf = r.json()["CsrfToken"]
        assert (await browser.get("/api/connectors")).status_code == 200
        before = await api.snapshot()
        assert_error(await browser.delete("/api/connectors/Relay", headers={"X-CSRF-Token": csrf}), 403,
                     "The token 'reader' is read-only")
        assert await api.snapshot() == before
    finally:
        await browser.aclose()


# --- bad input -----------------------------------------------------------------------------------

BASE = {"Name": "Bad", "AddressSpaces": "*"}
SMART = {**BASE, "DNSRoutingEnabled": False, "SmartHosts": "relay.contoso.test"}

# (rule, values, a piece of the model's message proving that this rule is the one that fired)
CREATE_RULES: list[tuple[str, dict[str, Any], str]] = [
    ("name required", {"AddressSpaces": "*"}, "Name: a connector name is required"),
    ("blank name", {**BASE, "Name": "   "}, "Name: a connector name is required"),
    ("name too long", {**BASE, "Name": "N" * 65}, "longer than 64"),
    ("backslash in name", {**BASE, "Name": "EXCH01\\Relay"}, "control character or a backslash"),
    ("address space required", {"Name": "Bad"}, "AddressSpaces: at least one address space is required"),
    ("bad address space", {**BASE, "AddressSpaces": "not a domain"}, "is not a valid SMTP domain"),
    ("bad wildcard", {**BASE, "AddressSpaces": "contoso.*"}, "a wildcard must be"),
    ("cost out of range", {**BASE, "AddressSpaces": "contoso.test;500"}, "outside the allowed range 1-100"),
    ("unknown usage", {**BASE, "Usage": "Mailbox"}, "Usage: 'Mailbox' is not one of"),
    ("not a boolean", {**BASE, "Enabled": "perhaps"}, "Enabled: 'perhaps' is not a boolean"),
    ("port out of range", {**BASE, "Port": 70000}, "Port: 70000 is outside the allowed range 0-65535"),
    ("port not a number", {**BASE, "Port": "smtp"}, "is not a whole number"),
    ("bad fqdn", {**BASE, "Fqdn": "bad_host!"}, "Fqdn: 'bad_host!' is not a valid domain name"),
    ("size too big", {**BASE, "MaxMessageSize": "3GB"}, "above the maximum"),
    ("size unreadable", {**BASE, "MaxMessageSize": "lots"}, "MaxMessageSize:"),
    ("messages per connection", {**BASE, "SmtpMaxMessagesPerConnection": 0}, "outside the allowed range 1-2147483647"),
    ("inactivity timeout", {**BASE, "ConnectionInactivityTimeOut": "2.00:00:00"}, "must be between 00:00:01 and 1.00:00:00"),
    ("logging level", {**BASE, "ProtocolLoggingLevel": "Loud"}, "ProtocolLoggingLevel: 'Loud' is not one of"),
    ("source server name", {**BASE, "SourceTransportServers": "bad server!"}, "is not a server name"),
    ("no source server", {**BASE, "SourceTransportServers": ""}, "SourceTransportServers: at least one transport server"),
    ("sender domain", {**BASE, "SenderDomains": "not a domain"}, "SenderDomains: 'not a domain' is not a domain"),
    ("tls auth level value", {**BASE, "RequireTLS": True, "TlsAuthLevel": "Strict"}, "TlsAuthLevel: 'Strict' is not one of"),
    ("auth mechanism value", {**SMART, "SmartHostAuthMechanism": "Kerberos"}, "SmartHostAuthMechanism: 'Kerberos' is not one of"),
    ("smart host port", {**SMART, "SmartHosts": "relay.contoso.test:70000"}, "outside 1-65535"),
    ("smart host name", {**SMART, "SmartHosts": "not a host"}, "is neither a host name nor an IP address"),
    ("unknown property", {**BASE, "Colour": "red"}, "'Colour' is not a send connector property"),
    ("smart hosts need DNS routing off", {**BASE, "SmartHosts": "relay.contoso.test"},
     "SmartHosts (--smart-hosts) can only be set when DNSRoutingEnabled is false"),
    ("DNS routing off needs smart hosts", {**BASE, "DNSRoutingEnabled": False},
     "DNSRoutingEnabled false (--dns-routing-enabled false) requires SmartHosts"),
    ("non-SMTP space needs smart hosts", {**BASE, "AddressSpaces": "X400:c=US;a=;p=Contoso;1"},
     "a non-SMTP address space requires SmartHosts"),
    ("RequireTLS with IgnoreSTARTTLS", {**BASE, "RequireTLS": True, "IgnoreSTARTTLS": True},
     "IgnoreSTARTTLS must be false when RequireTLS is true"),
    ("TlsAuthLevel needs RequireTLS", {**BASE, "TlsAuthLevel": "EncryptionOnly"},
     "The TlsAuthLevel parameter (--tls-auth-level) can only be set when RequireTLS is true"),
    ("TlsDomain needs DomainValidation", {**BASE, "RequireTLS": True, "TlsAuthLevel": "EncryptionOnly",
                                          "TlsDomain": "mx.fabrikam.test"},
     "The TLSDomain parameter (--tls-domain) can only be set if the TLSAuthLevel parameter"),
    ("DomainValidation smart host needs TlsDomain", {**SMART, "RequireTLS": True, "TlsAuthLevel": "DomainValidation"},
     "TlsDomain (--tls-domain) is required when TlsAuthLevel is DomainValidation"),
    ("bad TlsDomain", {**BASE, "RequireTLS": True, "TlsAuthLevel": "DomainValidation", "TlsDomain": "not valid"},
     "TlsDomain: 'not valid' is not a valid domain name"),
    ("auth needs a smart host", {**BASE, "SmartHostAuthMechanism": "BasicAuth", "AuthenticationCredential": "u"},
     "SmartHostAuthMechanism can only be set on a smart-host connector"),
    ("basic auth needs a credential", {**SMART, "SmartHostAuthMechanism": "BasicAuth"},
     "SmartHostAuthMechanism BasicAuth requires AuthenticationCredential"),
    ("XOAUTH2 needs a token file", {**SMART, "SmartHostAuthMechanism": "XOAUTH2", "AuthenticationCredential": "u"},
     "SmartHostAuthMechanism XOAUTH2 requires AuthenticationCredential and AuthenticationTokenFile"),
    ("token file only with XOAUTH2", {**SMART, "AuthenticationTokenFile": "/etc/mailhop/token"},
     "AuthenticationTokenFile is used only with SmartHostAuthMechanism XOAUTH2"),
    ("TlsWrapper with IgnoreSTARTTLS", {**BASE, "TlsWrapper": True, "IgnoreSTARTTLS": True},
     "TlsWrapper and IgnoreSTARTTLS cannot both be true"),
]


async def test_create_refuses_each_connector_rule_with_the_models_message(api: Api) -> None:
    await api.full.post("/api/connectors", json={"Name": "Existing", "AddressSpaces": "contoso.test"})
    before = await api.snapshot()
    for rule, values, piece in CREATE_RULES:
        expected = model_error(values)
        assert piece in expected, (rule, expected)  # the case exercises the rule it is named after
        r = await api.full.post("/api/connectors", json=values)
        assert r.status_code == 400, (rule, r.status_code, r.text)
        assert r.json() == {"detail": expected}, rule
    assert await api.snapshot() == before


# (rule, changes to the connector "Relay" (a smart-host connector), piece of the model's message)
UPDATE_RULES: list[tuple[str, dict[str, Any], str]] = [
    ("usage is fixed at creation", {"Usage": "Internal"}, "Usage can only be chosen when the connector is created"),
    ("DNS routing back on with smart hosts", {"DNSRoutingEnabled": True}, "SmartHosts (--smart-hosts) can only be set"),
    ("smart hosts removed", {"SmartHosts": ""}, "requires SmartHosts"),
    ("blank rename", {"Name": ""}, "Name: a connector name is required"),
    ("port", {"Port": -1}, "Port: -1 is outside the allowed range 0-65535"),
    ("TlsAuthLevel without RequireTLS", {"TlsAuthLevel": "CertificateValidation"}, "can only be set when RequireTLS is true"),
    ("IgnoreSTARTTLS with RequireTLS", {"RequireTLS": True, "IgnoreSTARTTLS": True}, "IgnoreSTARTTLS must be false"),
    ("basic auth without credential", {"SmartHostAuthMechanism": "BasicAuth"}, "requires AuthenticationCredential"),
    ("unknown property", {"Colour": "red"}, "'Colour' is not a send connector property"),
    ("no address space", {"AddressSpaces": ""}, "AddressSpaces: at least one address space is required"),
]


async def test_update_refuses_each_connector_rule_with_the_models_message(api: Api) -> None:
    r = await api.full.post("/api/connectors", json={"Name": "Relay", "AddressSpaces": "*", "DNSRoutingEnabled": False,
                                                      "SmartHosts": "relay.contoso.test"})
    assert r.status_code == 201, r.text
    current = await api.store.connectors.get("Relay")
    before = await api.snapshot()
    for rule, values, piece in UPDATE_RULES:
        with pytest.raises(ValidationError) as info:
            update_connector(current, values)
        expected = str(info.value)
        assert piece in expected, (rule, expected)
        r = await api.full.patch("/api/connectors/Relay", json=values)
        assert r.status_code == 400, (rule, r.status_code, r.text)
        assert r.json() == {"detail": expected}, rule
    assert_error(await api.full.patch("/api/connectors/Relay", json={}), 400,
                 "nothing to change: give at least one property")
    assert await api.snapshot() == before


async def test_basic_auth_needs_a_password_as_the_cli_requires(api: Api) -> None:
    """The CLI refuses BasicAuth without --password-file (``connector._check_local``); the API without Password."""
    before = await api.snapshot()
    # BasicAuth needs a secret: --password-file on the CLI, "Password" here.
    values = {**SMART, "SmartHostAuthMechanism": "BasicAuth", "AuthenticationCredential": "relay-user"}
    assert_error(await api.full.post("/api/connectors", json=values), 400,
                 "SmartHostAuthMechanism BasicAuth needs Password")
    assert_error(await api.full.post("/api/connectors", json={**values, "Password": ""}), 400,
                 "Password: must be a non-empty string")
    assert_error(await api.full.post("/api/connectors", json={**values, "Password": 1234}), 400,
                 "Password: must be a non-empty string")
    assert await api.snapshot() == before


async def test_client_certificate_must_exist_as_the_cli_requires(api: Api) -> None:
    """``mailhop connector new/set --tls-certificate-name`` refuses a name of no [[certificates]] entry."""
    before = await api.snapshot()
    with pytest.raises(ConfigError) as info:
        find_certificate(api.t.service.settings.certificates, "NoSuchCertificate")
    expected = f"TlsCertificateName: {info.value}"
    r = await api.full.post("/api/connectors", json={**BASE, "TlsCertificateName": "NoSuchCertificate"})
    assert_error(r, 400, expected)
    assert await api.snapshot() == before
    r = await api.full.post("/api/connectors", json={"Name": "Relay", "AddressSpaces": "*"})
    assert r.status_code == 201, r.text
    before = await api.snapshot()
    r = await api.full.patch("/api/connectors/Relay", json={"TlsCertificateName": "NoSuchCertificate"})
    assert_error(r, 400, expected)
    assert await api.snapshot() == before


async def test_values_of_the_wrong_json_type_are_refused(api: Api) -> None:
    """A JSON object or a list of objects where a string is expected is invalid, never str()-ed."""
    before = await api.snapshot()
    r = await api.full.post("/api/connectors", json={"Name": {"first": "Relay"}, "AddressSpaces": "*"})
    assert_error(r, 400)
    assert r.json()["detail"].startswith("Name:")
    r = await api.full.post("/api/connectors", json={**SMART, "SmartHosts": [{"host": "relay.contoso.test"}]})
    assert_error(r, 400)
    assert r.json()["detail"].startswith("SmartHosts:")
    r = await api.full.post("/api/connectors", json={**BASE, "AddressSpaces": [1, None]})
    assert_error(r, 400)
    assert await api.snapshot() == before


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize("field", ["Name", "Comment"])
async def test_text_that_is_not_unicode_is_refused(api: Api, field: str, method: str) -> None:
    r"""JSON may carry a lone surrogate (``"\ud800"``); it is not text: a 400 that stores nothing, never a 500."""
    r = await api.full.post("/api/connectors", json={"Name": "Relay", "AddressSpaces": "*", "Comment": "fine"})
    assert r.status_code == 201, r.text
    before = await api.snapshot()
    stored_before = [to_exchange(c) for c in await api.store.connectors.list()]
    if method == "POST":
        path, body = "/api/connectors", {"Name": "Other", "AddressSpaces": "*", field: "x\ud800"}
    else:
        path, body = "/api/connectors/Relay", {field: "x\ud800"}
    r = await api.full.request(method, path, content=json.dumps(body).encode(),
                               headers={"Content-Type": "application/json"})
    stored = [to_exchange(c) for c in await api.store.connectors.list()]
    assert (r.status_code, stored == stored_before) == (400, True), (
        f"answered {r.status_code} {r.text!r}; store now holds {[c['Name'] for c in stored]!r} "
        f"with comments {[c['Comment'] for c in stored]!r}")
    assert_error(r, 400)
    assert await api.snapshot() == before


async def test_bodies_that_are_not_a_json_object_are_refused(api: Api) -> None:
    await api.full.post("/api/connectors", json={"Name": "Relay", "AddressSpaces": "*"})
    before = await api.snapshot()
    bodies: list[tuple[bytes, str]] = [
        (b"Name=Other&AddressSpaces=*", "application/x-www-form-urlencoded"),
        (b"{\"Name\": \"Other\", ", "application/json"),
        (b"not json at all", "application/json"),
        (b"[{\"Name\": \"Other\", \"AddressSpaces\": \"*\"}]", "application/json"),
        (b"\"Other\"", "application/json"),
        (b"42", "application/json"),
        (b"null", "application/json"),
        (b"", "application/json"),
        (b"{\"Name\": \"Other\", \"AddressSpaces\": \"*\"}", "text/plain"),
    ]
    for content, content_type in bodies:
        for method, path in (("POST", "/api/connectors"), ("PATCH", "/api/connectors/Relay")):
            r = await api.full.request(method, path, content=content, headers={"Content-Type": content_type})
            assert_error(r, 400)
        r = await api.full.post("/api/headers/analyze", content=content, headers={"Content-Type": content_type})
        assert_error(r, 400)
    assert await api.snapshot() == before


async def test_malformed_json_gets_the_json_object_message(api: Api) -> None:
    """The handler maps json_invalid to one clear message; a bare "0: JSON decode error" points at nothing."""
    for content in (b"{\"Name\": \"Other\", ", b"\x00"):
        r = await api.full.post("/api/connectors", content=content, headers={"Content-Type": "application/json"})
        assert_error(r, 400, "the request body must be a JSON object (Content-Type: application/json)")


async def test_duplicate_connector_names_conflict(api: Api) -> None:
    for name in ("Relay", "Other"):
        r = await api.full.post("/api/connectors", json={"Name": name, "AddressSpaces": "*"})
        assert r.status_code == 201, r.text
    before = await api.snapshot()
    assert_error(await api.full.post("/api/connectors", json={"Name": "Relay", "AddressSpaces": "contoso.test"}), 409,
                 "A send connector named 'Relay' already exists")
    assert_error(await api.full.post("/api/connectors", json={"Name": "RELAY", "AddressSpaces": "*"}), 409,
                 "A send connector named 'RELAY' already exists")
    assert_error(await api.full.patch("/api/connectors/Other", json={"Name": "relay"}), 409,
                 "A send connector named 'relay' already exists")
    assert await api.snapshot() == before


async def test_unknown_objects_are_not_found(api: Api) -> None:
    await api.full.post("/api/connectors", json={"Name": "Relay", "AddressSpaces": "fabrikam.test", "DNSRoutingEnabled": False,
                                                 "SmartHosts": "relay.contoso.test"})
    await park_unreachable(api, to="carol@northwind.test")
    before = await api.snapshot()
    missing_connector = "The send connector 'Nowhere' was not found"
    assert_error(await api.full.get("/api/connectors/Nowhere"), 404, missing_connector)
    assert_error(await api.full.patch("/api/connectors/Nowhere", json={"Enabled": False}), 404, missing_connector)
    assert_error(await api.full.delete("/api/connectors/Nowhere"), 404, missing_connector)
    for action in ("retry", "suspend", "resume"):
        assert_error(await api.full.post(f"/api/queues/nowhere.test/{action}"), 404, "The queue 'nowhere.test' was not found")
        assert_error(await api.full.post(f"/api/queues/EXCH01\\Nowhere/{action}"), 404, "The queue 'Nowhere' was not found")
    missing = 123456789
    not_found = f"The message {missing} was not found in any queue"
    assert_error(await api.full.post(f"/api/messages/{missing}/suspend"), 404, not_found)
    assert_error(await api.full.post(f"/api/messages/{missing}/resume"), 404, not_found)
    assert_error(await api.full.delete(f"/api/messages/{missing}"), 404, not_found)
    assert_error(await api.full.delete(f"/api/messages/{missing}", params={"ndr": "true"}), 404, not_found)
    # Not a message id at all is bad input, not a missing message.
    assert_error(await api.full.post("/api/messages/-1/suspend"), 400)
    assert_error(await api.full.post("/api/messages/abc/suspend"), 400)
    assert_error(await api.full.get("/api/messages", params={"result_size": 0}), 400)
    assert_error(await api.full.get("/api/tracking", params={"internal_message_id": "x"}), 400)
    with pytest.raises(ValidationError) as info:
        parse_time("yesterday-ish", 0)
    assert_error(await api.full.get("/api/tracking", params={"start": "yesterday-ish"}), 400, str(info.value))
    assert await api.snapshot() == before


# --- the OpenAPI document ------------------------------------------------------------------------


async def test_openapi_document_needs_a_token_and_lists_every_route(api: Api) -> None:
    assert_error(await api.anon.get("/api/openapi.json"), 401)
    r = await api.reader.get("/api/openapi.json")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    assert documented == set(OPERATIONS)
    # ...and the running application has no /api route the document leaves out.
    app = api.t.service.admin.server.config.app
    served = {(method, route.path) for route in app.routes if isinstance(route, APIRoute)
              and route.path.startswith("/api/") and route.include_in_schema for method in route.methods}
    assert served == set(OPERATIONS)
    for method, path in OPERATIONS:
        responses = doc["paths"][path][method.lower()]["responses"]
        for status in ("400", "401", "403", "404", "409", "503"):
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
    assert doc["components"]["schemas"]["ErrorBody"]["required"] == ["detail"]


async def test_openapi_documents_the_status_codes_the_api_answers(api: Api) -> None:
    """Invalid input is answered 400 with {"detail": "..."}; the document must not promise a 422 list instead."""
    doc = (await api.reader.get("/api/openapi.json")).json()
    promised_422 = sorted(f"{method.upper()} {path}" for path, ops in doc["paths"].items()
                          for method, op in ops.items() if "422" in op["responses"])
    r = await api.full.get("/api/messages", params={"result_size": 0})
    assert_error(r, 400)  # what a validation failure really is
    assert promised_422 == [], f"documented 422 (HTTPValidationError) that the API never sends: {promised_422}"


async def test_every_answer_carries_the_security_headers(api: Api) -> None:
    for r in (await api.anon.get("/console/"), await api.anon.get("/api/queues"), await api.reader.get("/api/queues"),
              await api.anon.get("/console/app.js")):
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], r.request.url
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY" and r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-content-type-options"] == "nosniff"


async def test_the_admin_api_speaks_https_with_a_certificate(transport_factory: Any, tmp_path: Path) -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "admin.pem"))
    t = await transport_factory(admin={"bind": f"127.0.0.1:{free_port()}", "tls_certificate": str(tmp_path / "admin.pem"),
                                       "tls_key": str(tmp_path / "admin.pem")})
    url = f"https://{t.service.settings.admin.bind}"
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with httpx.AsyncClient(verify=context) as client:
        r = await client.get(f"{url}/api/queues")
    assert r.status_code == 401 and "frame-ancestors" in r.headers["content-security-policy"]
    async with httpx.AsyncClient(verify=False) as plain:
        with pytest.raises(httpx.HTTPError):
            await plain.get(url.replace("https", "http") + "/api/queues")
