"""Schemathesis against the live admin API: whatever the OpenAPI document allows, the API answers sanely.

The service runs as ``mailhop serve`` in a subprocess (its own event loop, nothing shared
with schemathesis's synchronous calls) with a full-control token from ``mailhop admin
token create``.  It is seeded first (a send connector, a message in a Retry queue and one
in Unreachable) so generated calls and the stateful links reach real objects.

Checks on every response: no 5xx, the status code is one the document lists for the
operation, the content type is documented, and the body conforms to the documented schema.

schemathesis's pytest plugin (``schemathesis.pytest.from_fixture``) cannot run under
pytest 9.2 (it reads ``request.node._nodeid``, which is gone), so the operations are
driven through schemathesis's Python API: each operation's Hypothesis strategy in positive
and (where the document constrains something) negative mode, then schemathesis's state
machine over the links between operations.  The document (fetched from the live service,
without a token) declares no links, so LINKS adds them before schemathesis loads it.
"""

from __future__ import annotations

import copy
import smtplib
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.generation.stateful import run_state_machine_as_test

from tests.integration.test_admin_api import OPERATIONS
from tests.support.dns import DnsServer
from tests.support.mailhop import Mailhop
from tests.support.net import free_port, port_open
from tests.support.wait import wait_for

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]

# Operations where the document constrains something that negative data can break: a body,
# a non-string parameter, or a bounded one.  test_negative_operations_are_all_the_constrained_ones
# keeps this list honest.
NEGATIVE = [
    ("POST", "/api/session"),
    ("POST", "/api/connectors"),
    ("PATCH", "/api/connectors/{name}"),
    ("GET", "/api/messages"),
    ("POST", "/api/messages"),
    ("POST", "/api/messages/{message_id}/suspend"),
    ("POST", "/api/messages/{message_id}/resume"),
    ("DELETE", "/api/messages/{message_id}"),
    ("GET", "/api/tracking"),
    ("GET", "/api/route"),
    ("POST", "/api/headers/analyze"),
    ("POST", "/api/dkim"),
    ("PATCH", "/api/dkim/{domain}"),
    ("POST", "/api/dkim/{domain}/rotate"),
    ("GET", "/api/domains/{domain}/readiness"),
]

EXAMPLES = settings(max_examples=20, derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck), print_blob=False)


@dataclass
class Live:
    url: str
    token: str
    mailhop: Mailhop
    session: requests.Session

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _submit(m: Mailhop, to: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "alice@contoso.test", to, "seed"
    msg.set_content("Seed message.\n")
    with smtplib.SMTP(m.host, m.port, timeout=30) as smtp:
        smtp.send_message(msg)


def _seed(live: Live) -> None:
    """A connector to a closed port (its queue goes to Retry), a message no connector takes, and a
    DKIM signing config."""
    with httpx.Client(base_url=live.url, headers=live.auth, timeout=60) as client:
        r = client.post("/api/dkim", json={"Domain": "contoso.test", "KeySize": 1024})
        assert r.status_code == 201, r.text
        r = client.post("/api/connectors", json={"Name": "Seed Relay", "AddressSpaces": "fabrikam.test",
                                                  "DNSRoutingEnabled": False, "SmartHosts": f"[127.0.0.1]:{free_port()}"})
        assert r.status_code == 201, r.text
        # Mail that arrives before the server loads the connector is resubmitted when it does.
        _submit(live.mailhop, "bob@fabrikam.test")
        _submit(live.mailhop, "carol@northwind.test")

        def seeded() -> bool:
            queues = {m["Queue"] for m in client.get("/api/messages").json()}
            return queues == {"Seed Relay", "Unreachable"}

        wait_for(seeded, what="the seeded messages in their queues")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    # DNS from a dnsmasq that knows nothing: DKIM checks and readiness answer at once, from no data.
    zone = DnsServer().start()
    m = Mailhop(tmp_path_factory.mktemp("schemathesis"),
                dns={"nameservers": [zone.nameserver], "timeout": "1s", "lifetime": "2s"})
    bind = tomllib.loads(m.config_path.read_text())["admin"]["bind"]
    host, port = bind.rsplit(":", 1)
    session = requests.Session()
    try:
        m.start()
        wait_for(lambda: port_open(host, int(port)), what="the admin API to listen")
        token = m.cli("admin", "token", "create", "schemathesis").stdout.strip()
        live = Live(f"http://{bind}", token, m, session)
        _seed(live)
        yield live
    finally:
        session.close()
        m.stop()
        zone.stop()


def _ref(path: str, method: str) -> str:
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


# How the API's objects lead to each other, as OpenAPI links.  The document has none, and
# schemathesis's inference guesses lower-case keys (``name``, ``message_id``) where the API
# uses Exchange's (``Identity``, ``Name``), so every inferred link would miss.  Explicit links
# take no ``*`` in their JSON pointers: lists link through their first items.
_CONNECTOR = "/api/connectors/{name}"
_FIRST = range(3)
LINKS: dict[tuple[str, str, str], dict[str, tuple[str, str, dict[str, str]]]] = {
    ("/api/connectors", "post", "201"): {
        f"{verb}Created": (_CONNECTOR, verb.lower(), {"path.name": "$response.body#/Identity"})
        for verb in ("Get", "Patch", "Delete")},
    ("/api/connectors", "get", "200"): {
        f"{verb}Listed{i}": (_CONNECTOR, verb.lower(), {"path.name": f"$response.body#/{i}/Identity"})
        for verb in ("Get", "Patch", "Delete") for i in _FIRST},
    (_CONNECTOR, "patch", "200"): {
        f"{verb}Changed": (_CONNECTOR, verb.lower(), {"path.name": "$response.body#/Identity"})
        for verb in ("Get", "Delete")},
    ("/api/queues", "get", "200"): {
        f"{action.title()}Queue{i}": (f"/api/queues/{{queue}}/{action}", "post",
                                      {"path.queue": f"$response.body#/{i}/Identity"})
        for action in ("retry", "suspend", "resume") for i in _FIRST},
    ("/api/messages", "get", "200"): {
        f"{name}{i}": (target, verb, {param: f"$response.body#/{i}/Identity"})
        for name, target, verb, param in (
            ("SuspendMessage", "/api/messages/{message_id}/suspend", "post", "path.message_id"),
            ("ResumeMessage", "/api/messages/{message_id}/resume", "post", "path.message_id"),
            ("RemoveMessage", "/api/messages/{message_id}", "delete", "path.message_id"),
            ("TraceMessage", "/api/tracking", "get", "query.internal_message_id"))
        for i in _FIRST},
    ("/api/servers", "get", "200"): {
        f"{action.title()}Server": (f"/api/servers/{{name}}/{action}", "post", {"path.name": "$response.body#/0/Name"})
        for action in ("drain", "resume")},
}


@pytest.fixture(scope="module")
def document(live: Live) -> dict[str, Any]:
    # The document is served to a token, like everything else.
    assert httpx.get(f"{live.url}/api/openapi.json").status_code == 401
    r = httpx.get(f"{live.url}/api/openapi.json", headers=live.auth)
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


@pytest.fixture(scope="module")
def schema(live: Live, document: dict[str, Any]) -> Any:
    linked = copy.deepcopy(document)
    for (path, method, status), links in LINKS.items():
        linked["paths"][path][method]["responses"][status]["links"] = {
            name: {"operationRef": _ref(target, verb), "parameters": parameters}
            for name, (target, verb, parameters) in links.items()}
    config = schemathesis.Config.from_dict({"phases": {"stateful": {"inference": {"algorithms": []}}}})
    loaded = schemathesis.openapi.from_dict(linked, config=config)
    loaded.config.update(base_url=live.url)
    return loaded


def _operation(schema: Any, method: str, path: str) -> Any:
    return schema[path][method]


def _run(live: Live, operation: Any, mode: GenerationMode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @EXAMPLES
    def check(case: Any) -> None:
        case.call_and_validate(session=live.session, headers=live.auth, checks=CHECKS)

    check()


def test_schemathesis_sees_every_operation(schema: Any) -> None:
    seen = {(op.method.upper(), op.path) for op in (r.ok() for r in schema.get_all_operations())}
    assert seen == set(OPERATIONS)


def test_negative_operations_are_all_the_constrained_ones(document: dict[str, Any]) -> None:
    doc = document

    def constrained(op: dict[str, Any]) -> bool:
        if "requestBody" in op:
            return True
        for p in op.get("parameters", []):
            variants = p["schema"].get("anyOf", [p["schema"]])
            if any(v.get("type") not in ("string", "null") or set(v) - {"type", "title"} for v in variants):
                return True
        return False

    found = {(method.upper(), path) for path, ops in doc["paths"].items() for method, op in ops.items() if constrained(op)}
    assert found == set(NEGATIVE)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_positive_data(schema: Any, live: Live, method: str, path: str) -> None:
    _run(live, _operation(schema, method, path), GenerationMode.POSITIVE)


@pytest.mark.parametrize(("method", "path"), NEGATIVE, ids=[f"{m} {p}" for m, p in NEGATIVE])
def test_negative_data(schema: Any, live: Live, method: str, path: str) -> None:
    _run(live, _operation(schema, method, path), GenerationMode.NEGATIVE)


def test_stateful_sequences(schema: Any, live: Live) -> None:
    """Sequences along LINKS: list -> get/patch/delete a connector, list -> suspend/retry a queue, list ->
    suspend/resume/remove/trace a message, list -> drain/resume a server.  DELETE /api/session is in no
    link (and with a bearer token it only answers SignedOut), so it cannot cut a sequence short.  The
    DKIM and readiness endpoints are left to the positive and negative runs: sequences through them
    shifted the derandomized draws onto message removal, whose replays then met another server state."""
    base = schema.as_state_machine()
    assert schema.statistic.transitions.total > 0, "no links between operations: nothing stateful to test"

    answered: list[tuple[str, int]] = []

    class AdminApi(base):  # type: ignore[misc, valid-type]
        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            answered.append((f"{case.method} {case.operation.path}", response.status_code))

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"session": live.session, "headers": live.auth}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS, headers=live.auth)

    run_state_machine_as_test(AdminApi, settings=settings(
        max_examples=25, stateful_step_count=8, derandomize=True, database=None, deadline=None,
        suppress_health_check=list(HealthCheck), print_blob=False))
    # The links led somewhere: operations on an existing object (path parameter) succeeded.
    reached = sorted({op for op, status in answered if "{" in op and status == 200})
    assert reached, f"no linked call reached an existing object: {sorted(set(answered))}"
    # The API still answers after all that.
    r = live.session.get(f"{live.url}/api/session", headers=live.auth)
    assert r.status_code == 200 and r.json()["Name"] == "schemathesis"
