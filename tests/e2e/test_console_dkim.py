"""The console's DKIM and Domain readiness pages in Chromium, against ``mailhop serve`` and a dnsmasq.

The DKIM page creates a config with its form, shows the TXT records with copy buttons
(the clipboard when the browser grants it, the text selected when it refuses), checks
DNS before and after the records are published, rotates through the confirmation
dialog and shows the pending selector.  What the browser showed never holds a private key.
The readiness page shows one row per check with its Pass/Warn/Fail badge.  A read-only
session sees the same data and no button that would change it.  Browser set-up: test_console.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_console import Console, browser, page, token
from tests.support.dkim_keys import assert_absent, fragments_of_instance
from tests.support.dns import DkimZone
from tests.support.mailhop import Mailhop

__all__ = ["browser", "page"]  # test_console's fixtures, requested by name below

DOMAIN = "contoso.test"
SPF = "v=spf1 ip4:127.0.0.1 -all"


@pytest.fixture
def zone() -> Iterator[DkimZone]:
    z = DkimZone()
    yield z
    z.server.stop()


@pytest.fixture
def served(mailhop_factory: Callable[..., Mailhop], zone: DkimZone) -> Mailhop:
    return mailhop_factory(dns={"nameservers": [zone.server.nameserver], "timeout": "1s", "lifetime": "3s"}).start()


def private_fragments(m: Mailhop, *domains: str) -> list[str]:
    # Playwright's sync API owns this thread's event loop: the store is read in a thread of its own.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, fragments_of_instance(m.config_path, domains)).result()


def config(m: Mailhop) -> dict[str, Any]:
    [only] = [c for c in m.cli_json("dkim", "list") if c["Domain"] == DOMAIN]
    return only


def record(c: dict[str, Any], selector: str) -> dict[str, Any]:
    return next(r for r in c["Records"] if r["Selector"] == selector)


def test_dkim_page_creates_copies_checks_and_rotates(served: Mailhop, zone: DkimZone, page: Page) -> None:
    m = served
    c = Console(page, m)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=c.url.removesuffix("/console/"))
    c.sign_in(token(m))
    c.nav("DKIM")
    expect(page.get_by_role("cell", name=re.compile("No domain has a DKIM signing config"))).to_be_visible()
    shown: list[str] = []

    page.get_by_label("Domain", exact=True).fill("Contoso.Test")
    page.get_by_label("RSA key size").select_option("1024")
    page.get_by_role("button", name="Create").click()
    expect(c.status).to_have_text("DKIM signing config for 'contoso.test' created: publish its records.")
    expect(page.get_by_role("heading", level=2, name=DOMAIN)).to_be_visible()
    made = config(m)
    assert made["KeySize"] == 1024 and made["ActiveSelector"] == "selector1"
    for selector in ("selector1", "selector1-ed25519"):
        row = c.row(selector)
        expect(row).to_contain_text("Active")
        expect(row).to_contain_text(f"{selector}._domainkey.contoso.test")
        expect(row).to_contain_text(record(made, selector)["Value"])
    c.shot("dkim-detail")
    shown.append(page.content())

    # Copy: to the clipboard when the browser allows it...
    value = record(made, "selector1")["Value"]
    page.get_by_role("button", name="Copy the value of selector1", exact=True).click()
    expect(c.status).to_have_text("the value of selector1 copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == value
    # ...and the text selected, for Ctrl+C, when it refuses.
    page.evaluate("() => { navigator.clipboard.writeText = () => Promise.reject(new DOMException('denied', 'NotAllowedError')); }")
    page.get_by_role("button", name="Copy the name of selector1-ed25519").click()
    expect(c.status).to_have_text("the name of selector1-ed25519 is selected: press Ctrl+C to copy it.")
    assert page.evaluate("window.getSelection().toString()") == "selector1-ed25519._domainkey.contoso.test"

    page.get_by_role("button", name="Check DNS now").click()
    expect(c.status).to_contain_text("DNS checked: KeyNotPublished")
    zone.publish(made)
    page.get_by_role("button", name="Check DNS now").click()
    expect(c.status).to_have_text("DNS checked: Valid.")
    assert config(m)["Status"] == "Valid"

    page.get_by_role("button", name="Rotate keys…").click()
    dialog = page.get_by_role("dialog", name="Rotate DKIM keys")
    expect(dialog).to_contain_text("Signing moves to selector2 only once its records are published in DNS")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    c.shot("dkim-rotate-confirm")
    page.keyboard.press("Escape")  # nothing rotates
    expect(dialog).to_be_hidden()
    assert config(m)["PendingSelector"] is None
    page.get_by_role("button", name="Rotate keys…").click()
    dialog.get_by_role("button", name="Rotate").click()
    expect(c.status).to_have_text("New keys made for selector2: publish its records.")
    expect(page.locator("#dkim-pending")).to_contain_text("Signing moves to selector2 once its records")
    expect(c.row("selector2")).to_contain_text("Pending")
    expect(c.row("selector2-ed25519")).to_contain_text("Pending")
    rotated = config(m)
    assert (rotated["ActiveSelector"], rotated["PendingSelector"]) == ("selector1", "selector2")
    expect(c.row("selector2")).to_contain_text(record(rotated, "selector2")["Value"])
    c.shot("dkim-pending")
    shown.append(page.content())

    page.get_by_role("link", name="← All DKIM signing configs").click()
    expect(c.row(DOMAIN)).to_contain_text("selector2")
    cells = c.cells(DOMAIN)
    assert cells[1:5] == ["Yes", "Valid", "selector1, selector1-ed25519", "selector2"], cells
    page.get_by_role("button", name=f"Disable {DOMAIN}").click()
    expect(c.status).to_have_text(f"DKIM signing for '{DOMAIN}' disabled.")
    expect(c.row(DOMAIN)).to_contain_text("Disabled")
    assert config(m)["Enabled"] is False
    c.shot("dkim-list")
    shown.append(page.content())

    m.stop()
    secrets = private_fragments(m, DOMAIN)
    for n, html in enumerate(shown):
        assert_absent(f"the console's page (view {n})", html, secrets)


def test_domain_readiness_page_shows_the_rows_with_badges(served: Mailhop, zone: DkimZone, page: Page) -> None:
    m = served
    zone.add(DOMAIN, SPF)
    c = Console(page, m)
    c.sign_in(token(m))
    c.nav("Domain readiness")
    page.get_by_label("Domain", exact=True).fill(DOMAIN)
    page.get_by_label("Sending IP addresses").fill("127.0.0.1")
    page.get_by_role("button", name="Check", exact=True).click()
    expect(page.get_by_role("heading", level=2)).to_contain_text(f"Readiness of {DOMAIN}")
    expect(page.get_by_role("heading", level=2).locator(".badge")).to_have_text("Fail")
    for check in ("SPF", "DKIM", "DMARC", "ReverseDNS", "MTA-STS", "TLS-RPT"):
        expect(c.row(check).first).to_be_visible()
        badge = c.row(check).first.locator(".badge")
        expect(badge).to_have_text(re.compile("^(Pass|Warn|Fail)$"))
        result = badge.inner_text()
        expect(badge).to_have_class(f"badge {result.lower()}")
    expect(c.row("SPF").locator(".badge")).to_have_text("Pass")
    for check in ("DMARC", "ReverseDNS"):
        expect(c.row(check).first.locator(".badge")).to_have_text("Fail")
        expect(c.row(check).first.locator(".fix")).not_to_be_empty()
    assert "ip=127.0.0.1" in page.url and f"domain={DOMAIN}" in page.url
    c.shot("domain-readiness")
    # The address holds the query: a reload shows the same report.
    page.reload()
    expect(page.get_by_label("Domain", exact=True)).to_have_value(DOMAIN)
    expect(c.row("SPF").locator(".badge")).to_have_text("Pass")


def test_read_only_session_sees_dkim_but_no_change_buttons(served: Mailhop, page: Page) -> None:
    m = served
    m.cli("dkim", "new", DOMAIN, "--key-size", "1024")
    c = Console(page, m)
    c.sign_in(token(m, "auditor", "--read-only"))
    c.nav("DKIM")
    expect(c.row(DOMAIN)).to_be_visible()
    expect(page.get_by_text("This session is read-only")).to_be_visible()
    for name in ("Create", f"Disable {DOMAIN}"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    c.row(DOMAIN).get_by_role("link", name=DOMAIN).click()
    expect(page.get_by_role("heading", level=2, name=DOMAIN)).to_be_visible()
    expect(c.row("selector1")).to_contain_text("selector1._domainkey.contoso.test")
    for name in ("Check DNS now", "Rotate keys…", "Disable", "Delete…"):
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name="Copy the value of selector1", exact=True)).to_be_enabled()
    expect(c.alert).to_be_empty()
    c.shot("dkim-read-only")
    c.nav("Domain readiness")
    expect(page.get_by_role("button", name="Check", exact=True)).to_be_enabled()
