"""DKIM private keys never leave the store: not in the API, the console, the server's log or ``--json``.

A real ``mailhop serve`` (log level DEBUG, DNS from a dnsmasq that publishes nothing)
gets configs made and rotated through the API and through the CLI (which goes through
the server's control socket); every API answer, every console file, the server's whole
log and every ``mailhop dkim ... --json`` output is kept.  After the server stops, the
keys are opened from its store and neither a key's base64 body nor any 40-character
slice of it may appear in what was kept.
"""

from __future__ import annotations

import asyncio
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.dkim_keys import assert_absent, assert_public_only, fragments_of_instance
from tests.support.dns import DnsServer
from tests.support.mailhop import Mailhop
from tests.support.net import port_open
from tests.support.wait import wait_for

STATIC = Path(__file__).resolve().parents[2] / "src" / "mailhop" / "admin" / "static"


@pytest.fixture
def zone() -> Iterator[DnsServer]:
    server = DnsServer().start()
    yield server
    server.stop()


@pytest.fixture
def served(tmp_path: Path, zone: DnsServer) -> Iterator[Mailhop]:
    m = Mailhop(tmp_path / "mailhop", dns={"nameservers": [zone.nameserver], "timeout": "1s", "lifetime": "3s"})
    m.start()
    yield m
    m.stop()


def test_no_private_key_in_api_console_log_or_json(served: Mailhop) -> None:
    m = served
    bind = tomllib.loads(m.config_path.read_text())["admin"]["bind"]
    host, port = bind.rsplit(":", 1)
    wait_for(lambda: port_open(host, int(port)), what="the admin API to listen")
    token = m.cli("admin", "token", "create", "secrets").stdout.strip()
    seen: list[tuple[str, str]] = []
    records: list[dict[str, str]] = []

    with httpx.Client(base_url=f"http://{bind}", headers={"Authorization": f"Bearer {token}"}, timeout=60) as api:
        def call(method: str, path: str, **kwargs: object) -> None:
            r = api.request(method, path, **kwargs)  # type: ignore[arg-type]
            assert r.status_code in (200, 201), (method, path, r.status_code, r.text)
            seen.append((f"{method} {path}", r.text))
            body = r.json()
            for item in body if isinstance(body, list) else [body]:
                records.extend(item.get("Records", []))

        call("POST", "/api/dkim", json={"Domain": "contoso.test", "KeySize": 1024})
        call("GET", "/api/dkim")
        call("GET", "/api/dkim/contoso.test")
        call("POST", "/api/dkim/contoso.test/check")
        call("PATCH", "/api/dkim/contoso.test", json={"SubDomains": True})
        call("POST", "/api/dkim/contoso.test/rotate", json={"KeySize": 1024})
        call("POST", "/api/dkim/contoso.test/check")

        for args in (("new", "fabrikam.test", "--key-size", "1024"), ("rotate", "fabrikam.test", "--key-size", "1024"),
                     ("show", "fabrikam.test"), ("show", "contoso.test"), ("list",)):
            result = m.cli("dkim", *args, "--json")
            seen.append((f"mailhop dkim {' '.join(args)} --json", result.stdout + result.stderr))
            assert result.stdout.strip().startswith(("{", "[")), result.stdout
        call("GET", "/api/dkim")

        # The console: its page and every file it loads (what it shows of the API is checked
        # in the browser, tests/e2e/test_console_dkim.py).
        page = api.get("/console/")
        assert page.status_code == 200
        seen.append(("/console/", page.text))
        for name in re.findall(r'(?:src|href)="([^"#]+)"', page.text):
            assert (STATIC / name).exists(), name
        for path in sorted(STATIC.iterdir()):
            r = api.get(f"/console/{path.name}")
            assert r.status_code == 200, path.name
            seen.append((f"/console/{path.name}", r.text))

    m.stop()
    log = m.log()
    assert "DKIM signing config for contoso.test created" in log  # the log is the server's, at DEBUG
    seen.append(("the server's log", log))

    secrets = asyncio.run(fragments_of_instance(m.config_path, ["contoso.test", "fabrikam.test"]))
    assert len(secrets) > 40
    assert_public_only(records, secrets)
    assert {r["Selector"] for r in records} >= {"selector1", "selector2", "selector1-ed25519", "selector2-ed25519"}
    for where, text in seen:
        assert_absent(where, text, secrets)
