"""An application's token and POST /api/messages against ``mailhop serve``, end to end."""

from __future__ import annotations

import tomllib
from collections.abc import Callable

import httpx

from tests.support.mailhop import Mailhop
from tests.support.sink import Sink
from tests.support.wait import wait_for


def test_a_submit_token_from_the_cli_sends_mail_over_http_and_nothing_else(
        mailhop_factory: Callable[..., Mailhop], capture: Sink) -> None:
    m = mailhop_factory().start()
    m.relay(capture.port)
    made = m.cli("admin", "token", "create", "app1", "--scope", "submit")
    token = made.stdout.strip()
    assert "may submit messages, nothing else" in made.stderr
    assert {t["Name"]: t["Scope"] for t in m.cli_json("admin", "token", "list")} == {"app1": "submit"}
    refused = m.cli("admin", "token", "create", "app2", "--scope", "submit", "--read-only", check=False)
    assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1
    m.wait_config(1)
    base = f"http://{tomllib.loads(m.config_path.read_text())['admin']['bind']}"
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as app:
        r = app.post("/api/messages", json={"From": "app@contoso.test", "To": ["bob@fabrikam.test"],
                                            "Subject": "from the application", "TextBody": "hello"})
        assert r.status_code == 202, r.text
        [queued] = r.json()["Messages"]
        assert app.get("/api/queues").status_code == 403
    wait_for(lambda: [str(c.message["Subject"]) for c in capture.messages] == ["from the application"],
             what="the message at the next hop")
    [receive] = [e for e in m.tracking() if e["EventId"] == "RECEIVE"]
    assert (receive["Source"], receive["InternalMessageId"]) == ("HTTP", queued["InternalMessageId"])
