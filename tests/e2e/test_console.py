"""The web console in a real browser: Playwright (from PyPI) driving Debian's chromium.

Each test starts ``mailhop serve`` (its admin API on a free port), signs in with a
token made by ``mailhop admin token create``, works the pages with the mouse and the
keyboard, and checks the result where it matters: the CLI, the store, the far side.
Playwright never downloads a browser: it launches ``/usr/bin/chromium``.
A PNG of every page goes to ``test-artifacts/console/``.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from tests.support.mailhop import Mailhop
from tests.support.net import free_port, port_open
from tests.support.postfix import Postfix
from tests.support.sink import Sink
from tests.support.smtp import swaks
from tests.support.wait import wait_for

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
LONG_RETRY = {"glitch_retry_interval": "1h", "transient_retry_interval": "1h", "message_retry_interval": "1h"}

expect.set_options(timeout=20_000)


def admin_bind(m: Mailhop) -> str:
    """The admin API's host:port, read back from the instance's generated mailhop.toml."""
    with m.config_path.open("rb") as fh:
        return str(tomllib.load(fh)["admin"]["bind"])


def token(m: Mailhop, name: str = "ops", *flags: str) -> str:
    return m.cli("admin", "token", "create", name, *flags).stdout.strip()


def send(m: Mailhop, to: str, subject: str) -> str:
    result = swaks(m.port, "--from", "alice@contoso.test", "--to", to, "--h-Subject", subject)
    assert result.returncode == 0 and result.queued_id, result.output
    return result.queued_id


def in_order(*parts: str) -> re.Pattern[str]:
    """Matches text that contains every part, in this order."""
    return re.compile(".*".join(re.escape(p) for p in parts))


def outcomes(m: Mailhop) -> dict[str, int]:
    """Recipients per outcome in the tracking log, counted as the dashboard must count them."""
    names = {"RECEIVE": "received", "SEND": "delivered", "DEFER": "deferred", "FAIL": "failed"}
    counts = dict.fromkeys(names.values(), 0)
    for e in m.tracking():
        if e["EventId"] in names:
            counts[names[e["EventId"]]] += len(e.get("Recipients") or [1])
    return counts


def queue(m: Mailhop, name: str) -> dict[str, Any] | None:
    return next((q for q in m.cli_json("queue", "list") if q["Identity"] == name), None)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (Playwright must not download one)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    yield opened
    context.close()
    assert errors == [], f"JavaScript errors on the console's pages: {errors}"


class Console:
    """One browser tab on one mailhop's console."""

    def __init__(self, page: Page, m: Mailhop) -> None:
        self.page = page
        self.m = m
        bind = admin_bind(m)
        host, port = bind.rsplit(":", 1)
        wait_for(lambda: port_open(host, int(port)), what="the admin API to listen")
        self.url = f"http://{bind}/console/"

    def open(self, route: str = "") -> None:
        self.page.goto(self.url + (f"#/{route}" if route else ""))

    def sign_in(self, secret: str) -> None:
        self.open()
        self.page.get_by_label("Admin token").fill(secret)
        self.page.get_by_role("button", name="Sign in").click()
        self.expect_title("Dashboard")

    def expect_title(self, title: str) -> None:
        expect(self.page.get_by_role("heading", level=1)).to_have_text(title)

    def nav(self, label: str, title: str | None = None) -> None:
        self.page.get_by_role("navigation", name="Console").get_by_role("link", name=label, exact=True).click()
        self.expect_title(title or label)

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    @property
    def status(self) -> Locator:
        return self.page.locator("#status")

    @property
    def alert(self) -> Locator:
        return self.page.locator("#alert")

    def row(self, header: str) -> Locator:
        """The table row whose row header is exactly ``header``."""
        return self.page.get_by_role("row").filter(has=self.page.get_by_role("rowheader", name=header, exact=True))

    def cells(self, header: str) -> list[str]:
        """The texts of the row's cells, once the row is there (reading does not wait by itself:
        right after a navigation the table may still be loading)."""
        row = self.row(header)
        expect(row).to_have_count(1)
        return [t.strip() for t in row.locator("th, td").all_inner_texts()]

    def tab_to(self, name: str, limit: int = 40) -> None:
        """Press Tab until the focused element is the button ``name``: proves it is reachable by keyboard."""
        for _ in range(limit):
            self.page.keyboard.press("Tab")
            if self.page.evaluate("document.activeElement && document.activeElement.textContent.trim()") == name:
                return
        raise AssertionError(f"'{name}' was not reached with Tab")


# --- wizard helpers ---------------------------------------------------------------------------


def current_step(c: Console) -> Locator:
    return c.page.locator("ol.steps li[aria-current=step]")


def wizard_error(c: Console) -> Locator:
    return c.page.locator("form.wizard [role=alert]")


def open_wizard(c: Console) -> None:
    c.nav("Send connectors")
    c.page.get_by_role("link", name="New send connector").click()
    c.expect_title("New send connector")
    expect(current_step(c)).to_have_text("Name and type")


def cli_error(m: Mailhop, *args: str) -> str:
    result = m.cli("connector", "new", *args, check=False)
    assert result.returncode != 0
    return result.stderr.strip().removeprefix("mailhop: ")


# --- tests --------------------------------------------------------------------------------------


def test_no_token_shows_sign_in_and_wrong_token_is_refused(
        mailhop_factory: Callable[..., Mailhop], page: Page) -> None:
    m = mailhop_factory().start()
    secret = token(m)
    c = Console(page, m)
    c.open("queues")
    expect(page.get_by_role("heading", name="Sign in to mailhop")).to_be_visible()
    expect(page.get_by_role("navigation", name="Console")).to_be_hidden()
    expect(page.get_by_label("Admin token")).to_be_focused()
    c.shot("sign-in")

    page.get_by_label("Admin token").fill("not-a-token")
    page.keyboard.press("Enter")
    expect(page.locator("#signin-error")).to_have_text("This token is not valid")
    expect(page.get_by_role("navigation", name="Console")).to_be_hidden()

    c.sign_in(secret)
    expect(page.locator("#who")).to_contain_text("Signed in as ops")
    expect(page.locator("#who")).to_contain_text("full control")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to mailhop")).to_be_visible()
    c.open("connectors")  # the cookie is gone: a reload stays signed out
    page.reload()
    expect(page.get_by_role("heading", name="Sign in to mailhop")).to_be_visible()


def test_wizard_creates_the_seeds_to_internet_connector(
        mailhop_factory: Callable[..., Mailhop], page: Page) -> None:
    m = mailhop_factory().start()
    c = Console(page, m)
    c.sign_in(token(m))
    open_wizard(c)
    c.shot("wizard-1-name-and-type")

    # Step 1 by keyboard: type the name, pick the usage, Enter goes on.
    name = page.get_by_label("Name", exact=True)
    expect(name).to_be_focused()
    name.fill("To Internet")
    page.get_by_label("Internet", exact=True).check()
    name.press("Enter")
    expect(current_step(c)).to_have_text("Network settings")

    # Step 2: "MX record associated with recipient domain" is the default; Next by Tab + Enter.
    expect(page.get_by_label("MX record associated with recipient domain")).to_be_checked()
    c.shot("wizard-2-network-settings")
    c.tab_to("Next")
    page.keyboard.press("Enter")
    expect(current_step(c)).to_have_text("Address space")

    # Step 3: '*' with cost 1 is already there.
    expect(page.get_by_label("Address space 1", exact=True)).to_have_value("*")
    expect(page.get_by_label("Cost of address space 1")).to_have_value("1")
    c.shot("wizard-3-address-space")
    c.tab_to("Next")
    page.keyboard.press("Enter")
    expect(current_step(c)).to_have_text("Source server")

    # Step 4: this server comes from the receive connectors; add the seed's second server.
    expect(page.get_by_label("Server of source server 1")).to_have_value("EXCH01")
    expect(page.get_by_role("button", name="Next")).to_be_hidden()
    page.get_by_role("button", name="Add source server").click()
    expect(page.get_by_label("Server of source server 2")).to_be_focused()
    page.keyboard.type("EXCH02")
    c.shot("wizard-4-source-server")
    c.tab_to("Back")
    page.keyboard.press("Enter")
    expect(current_step(c)).to_have_text("Address space")
    c.tab_to("Next")
    page.keyboard.press("Enter")
    c.tab_to("Finish")
    page.keyboard.press("Enter")

    c.expect_title("Send connectors")
    expect(c.status).to_have_text("Send connector 'To Internet' created.")
    expect(c.row("To Internet")).to_be_visible()
    assert c.cells("To Internet")[:6] == ["To Internet", "Internet", "SMTP:*;1", "MX record", "EXCH01, EXCH02", "Yes"]
    c.shot("send-connectors")

    # The seed's New-SendConnector output, from the CLI.
    assert m.cli("connector", "list").stdout.splitlines() == [
        "Identity    AddressSpaces Enabled",
        "--------    ------------- -------",
        "To Internet {smtp:*;1}    True",
    ]
    shown = m.cli_json("connector", "show", "To Internet")
    assert shown["Usage"] == "Internet" and shown["DNSRoutingEnabled"] is True and shown["SmartHosts"] == []
    assert shown["SourceTransportServers"] == ["EXCH01", "EXCH02"]
    assert shown["MaxMessageSize"].startswith("35 MB")


def test_wizard_smart_host_variant_carries_mail(
        mailhop_factory: Callable[..., Mailhop], page: Page, capture: Sink) -> None:
    m = mailhop_factory().start()
    c = Console(page, m)
    c.sign_in(token(m))
    open_wizard(c)
    page.get_by_label("Name", exact=True).fill("Smarthost To Internet")
    page.get_by_label("Internet", exact=True).check()
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Route mail through smart hosts").check()
    page.get_by_label("Smart host 1", exact=True).fill(f"[127.0.0.1]:{capture.port}")
    c.shot("wizard-2-smart-hosts")
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Finish").click()

    expect(c.status).to_have_text("Send connector 'Smarthost To Internet' created.")
    cells = c.cells("Smarthost To Internet")
    assert cells[:5] == ["Smarthost To Internet", "Internet", "SMTP:*;1", f"Smart hosts: [127.0.0.1]:{capture.port}",
                         "EXCH01"]
    assert m.cli("connector", "list").stdout.splitlines()[2] == "Smarthost To Internet {smtp:*;1}    True"
    shown = m.cli_json("connector", "show", "Smarthost To Internet")
    assert shown["DNSRoutingEnabled"] is False and shown["SmartHosts"] == [f"[127.0.0.1]:{capture.port}"]

    # The connector made in the browser carries mail.
    m.wait_config(1)
    send(m, "bob@fabrikam.test", "via the wizard's smart host")
    [got] = wait_for(lambda: capture.for_recipient("bob@fabrikam.test"), what="delivery to the smart host")
    assert got.message["Subject"] == "via the wizard's smart host"


def test_wizard_shows_the_apis_validation_messages(
        mailhop_factory: Callable[..., Mailhop], page: Page) -> None:
    m = mailhop_factory().start()
    c = Console(page, m)
    c.sign_in(token(m))
    open_wizard(c)
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_label("Name", exact=True)).to_be_focused()  # a name is required before step 2
    expect(current_step(c)).to_have_text("Name and type")
    page.get_by_label("Name", exact=True).fill("Bad")
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Address space 1", exact=True).fill("bad domain")
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Finish").click()

    # The CLI's message, word for word, and the wizard goes back to the step it is about.
    expected = cli_error(m, "Bad", "--address-spaces", "bad domain;1")
    assert expected == "AddressSpaces: 'bad domain;1' is not a valid SMTP domain"
    expect(wizard_error(c)).to_have_text(expected)
    expect(current_step(c)).to_have_text("Address space")
    expect(page.get_by_label("Address space 1", exact=True)).to_be_focused()
    c.shot("wizard-validation-error")

    # Smart hosts listed while MX is chosen: the DNSRoutingEnabled rule.
    page.get_by_label("Address space 1", exact=True).fill("*")
    page.get_by_role("button", name="Back").click()
    page.get_by_role("button", name="Add smart host").click()
    page.keyboard.type("relay.contoso.test")
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Finish").click()
    expected = cli_error(m, "Bad", "--smart-hosts", "relay.contoso.test", "--address-spaces", "*")
    assert expected.startswith("SmartHosts (--smart-hosts) can only be set when DNSRoutingEnabled is false")
    expect(wizard_error(c)).to_have_text(expected)
    expect(current_step(c)).to_have_text("Network settings")

    # Smart hosts chosen, none listed.
    page.get_by_role("button", name="Remove smart host 1").click()
    page.get_by_label("Route mail through smart hosts").check()
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Finish").click()
    expected = cli_error(m, "Bad", "--dns-routing-enabled", "false", "--address-spaces", "*")
    expect(wizard_error(c)).to_have_text(expected)
    expect(current_step(c)).to_have_text("Network settings")
    assert m.cli_json("connector", "list") == []


def test_connector_list_disable_edit_and_delete(mailhop_factory: Callable[..., Mailhop], page: Page) -> None:
    m = mailhop_factory().start()
    m.cli("connector", "new", "To Internet", "--usage", "internet", "--address-spaces", "*")
    c = Console(page, m)
    c.sign_in(token(m))
    c.nav("Send connectors")

    page.get_by_role("button", name="Disable To Internet").click()
    expect(c.status).to_have_text("Send connector 'To Internet' disabled.")
    expect(c.row("To Internet").get_by_role("cell").nth(4)).to_have_text("No")
    expect(page.get_by_role("button", name="Enable To Internet")).to_be_focused()
    assert m.cli_json("connector", "show", "To Internet")["Enabled"] is False
    page.keyboard.press("Enter")
    expect(c.status).to_have_text("Send connector 'To Internet' enabled.")
    assert m.cli_json("connector", "show", "To Internet")["Enabled"] is True

    page.get_by_role("button", name="Edit To Internet").click()
    dialog = page.get_by_role("dialog", name="Edit send connector ‘To Internet’")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Address spaces").fill("contoso.test;2, *.contoso.test")
    dialog.get_by_label("Comment").fill("edited in the console")
    c.shot("send-connector-edit")
    dialog.get_by_role("button", name="Save").click()
    expect(c.status).to_have_text("Send connector 'To Internet' saved.")
    shown = m.cli_json("connector", "show", "To Internet")
    assert shown["AddressSpaces"] == ["SMTP:contoso.test;2", "SMTP:*.contoso.test;1"]
    assert shown["Comment"] == "edited in the console"

    page.get_by_role("button", name="Edit To Internet").click()
    dialog.get_by_label("Port").fill("70000")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_role("alert")).to_have_text("Port: 70000 is outside the allowed range 0-65535")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()

    page.get_by_role("button", name="Delete To Internet").click()
    confirm = page.get_by_role("dialog", name="Delete send connector")
    expect(confirm).to_contain_text("Delete the send connector 'To Internet'?")
    expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
    c.shot("send-connector-delete-confirm")
    page.keyboard.press("Enter")  # Cancel has the focus: nothing is deleted
    expect(confirm).to_be_hidden()
    assert [x["Name"] for x in m.cli_json("connector", "list")] == ["To Internet"]
    page.get_by_role("button", name="Delete To Internet").click()
    confirm.get_by_role("button", name="Delete").click()
    expect(c.status).to_have_text("Send connector 'To Internet' deleted.")
    expect(c.row("To Internet")).to_have_count(0)
    assert m.cli_json("connector", "list") == []


def test_read_only_token_sees_data_but_cannot_delete(mailhop_factory: Callable[..., Mailhop], page: Page) -> None:
    m = mailhop_factory().start()
    m.cli("connector", "new", "To Internet", "--usage", "internet", "--address-spaces", "*")
    c = Console(page, m)
    c.sign_in(token(m, "auditor", "--read-only"))
    expect(page.locator("#who")).to_contain_text("read-only")
    c.nav("Send connectors")
    expect(c.row("To Internet")).to_be_visible()
    page.get_by_role("button", name="Delete To Internet").click()
    page.get_by_role("dialog", name="Delete send connector").get_by_role("button", name="Delete").click()
    expect(c.alert).to_have_text("The token 'auditor' is read-only")
    expect(c.row("To Internet")).to_be_visible()
    c.shot("read-only-delete-refused")
    assert [x["Name"] for x in m.cli_json("connector", "list")] == ["To Internet"]


def test_queue_viewer_retry_delivers_a_deferred_queue(mailhop_factory: Callable[..., Mailhop], page: Page) -> None:
    port = free_port()
    m = mailhop_factory(queue=LONG_RETRY).start()  # after a failure, the next try is an hour away
    m.cli("connector", "new", "Relay", "--dns-routing-enabled", "false", "--smart-hosts", f"[127.0.0.1]:{port}",
          "--address-spaces", "*")
    m.wait_config(1)
    msg_id = send(m, "bob@fabrikam.test", "deferred then retried")
    wait_for(lambda: (q := queue(m, "Relay")) and q["Status"] == "Retry", what="Relay in Retry")

    c = Console(page, m)
    c.sign_in(token(m))
    c.nav("Queues")
    cells = c.cells("Relay")
    assert cells[:5] == ["Relay", "SmartHostConnectorDelivery", "Retry", "1", f"[127.0.0.1]:{port}"]
    assert cells[6].startswith("441 4.4.1")
    page.get_by_role("button", name="Messages of Relay").click()
    expect(page.get_by_role("heading", name="Messages in queue ‘Relay’")).to_be_focused()
    # The 64-bit message id survives JSON in the browser.
    expect(c.row(msg_id)).to_contain_text("deferred then retried")
    expect(c.row(msg_id)).to_contain_text("Retry")
    c.shot("queues-retry")

    sink = Sink(port=port).start()
    try:
        assert sink.messages == []
        page.get_by_role("button", name="Retry Relay").click()
        expect(c.status).to_have_text("Queue 'Relay': 1 recipient retried now.")
        [got] = wait_for(lambda: sink.for_recipient("bob@fabrikam.test"), what="delivery after Retry")
        assert got.message["Subject"] == "deferred then retried"
        wait_for(lambda: (q := queue(m, "Relay")) is None or q["MessageCount"] == 0, what="Relay drained")
        page.get_by_role("button", name="Refresh").click()
        expect(c.row(msg_id)).to_have_count(0)
        c.shot("queues-after-retry")
    finally:
        sink.stop()


def test_queue_viewer_suspend_resume_and_remove(mailhop_factory: Callable[..., Mailhop], page: Page) -> None:
    port = free_port()
    m = mailhop_factory(queue=LONG_RETRY).start()
    m.cli("connector", "new", "Relay", "--dns-routing-enabled", "false", "--smart-hosts", f"[127.0.0.1]:{port}",
          "--address-spaces", "*")
    m.wait_config(1)
    first = send(m, "bob@fabrikam.test", "first")
    second = send(m, "carol@fabrikam.test", "second")
    wait_for(lambda: (q := queue(m, "Relay")) and q["MessageCount"] == 2 and q["Status"] == "Retry", what="Retry")
    c = Console(page, m)
    c.sign_in(token(m))
    c.open("queues?queue=Relay")  # the selected queue is in the address
    c.expect_title("Queues")
    expect(c.row(first)).to_be_visible()

    page.get_by_role("button", name="Suspend Relay").click()
    expect(c.status).to_have_text("Queue 'Relay' suspended.")
    assert queue(m, "Relay")["Status"] == "Suspended"  # type: ignore[index]
    page.get_by_role("button", name="Resume Relay").click()
    expect(c.status).to_have_text("Queue 'Relay' resumed.")
    assert queue(m, "Relay")["Status"] != "Suspended"  # type: ignore[index]

    page.get_by_role("button", name=f"Suspend message {first}").click()
    expect(c.status).to_have_text(f"Message {first}: 1 recipient suspended.")
    expect(c.row(first).get_by_role("cell").nth(3)).to_have_text("Suspended")
    page.get_by_role("button", name=f"Resume message {first}").click()
    expect(c.status).to_have_text(f"Message {first}: 1 recipient resumed.")

    page.get_by_role("button", name=f"Remove message {second}").click()
    confirm = page.get_by_role("dialog", name="Remove message")
    c.shot("queues-remove-confirm")
    confirm.get_by_role("button", name="Remove without NDR").click()
    expect(c.status).to_have_text(f"Message {second} removed (carol@fabrikam.test); no NDR.")
    expect(c.row(second)).to_have_count(0)
    assert [x["Identity"] for x in m.cli_json("queue", "messages")] == [int(first)]


def test_dashboard_message_trace_and_receive_connectors(
        mailhop_factory: Callable[..., Mailhop], page: Page) -> None:
    sink = Sink(reject={"gone@fabrikam.test"}).start()
    try:
        m = mailhop_factory().start()
        m.cli("connector", "new", "Relay", "--dns-routing-enabled", "false", "--smart-hosts",
              f"[127.0.0.1]:{sink.port}", "--address-spaces", "*")
        m.wait_config(1)
        delivered = send(m, "bob@fabrikam.test", "traced")
        send(m, "gone@fabrikam.test", "bounced")
        wait_for(lambda: sink.for_recipient("bob@fabrikam.test"), what="delivery")
        wait_for(lambda: sink.for_recipient("alice@contoso.test"), what="the NDR for gone@")
        wait_for(lambda: m.cli_json("queue", "messages") == [], what="empty queues")
        counts = outcomes(m)
        assert counts["delivered"] >= 1 and counts["failed"] >= 1
        c = Console(page, m)
        c.sign_in(token(m))

        legend = page.locator(".legend")
        for outcome, count in counts.items():
            expect(legend).to_contain_text(f"{outcome.capitalize()}: {count}")
        expect(page.get_by_test_id("queue-depth")).to_have_text("0")
        chart = page.get_by_role("img", name="Messages in the last hour by outcome")
        expect(chart).to_have_attribute("aria-label", "Messages in the last hour by outcome (UTC, 5-minute buckets): " +
                                        ", ".join(f"{n} {o}" for o, n in counts.items()))
        expect(chart.locator("rect[fill='#2e7d32']")).not_to_have_count(0)  # a green (delivered) bar is drawn
        c.shot("dashboard")

        c.nav("Message trace")
        page.get_by_label("Recipient").fill("bob@fabrikam.test")
        page.get_by_role("button", name="Search").click()
        expect(c.status).to_have_text("2 events found.")
        events = page.get_by_role("table").locator("tbody tr")
        expect(events).to_have_count(2)
        expect(events.nth(0)).to_contain_text("RECEIVE")
        expect(events.nth(1)).to_contain_text("SEND")
        expect(page.locator("#page")).not_to_contain_text("null")
        c.shot("message-trace")
        events.nth(1).get_by_role("button", name=f"Follow message {delivered}").click()
        expect(page.get_by_role("heading", name=f"Message {delivered}")).to_be_focused()
        steps = page.locator("ol.timeline > li")
        expect(steps).to_have_count(2)
        expect(steps.nth(0)).to_contain_text("RECEIVE – Received")
        expect(steps.nth(0)).to_contain_text("Client Relay EXCH01")
        expect(steps.nth(1)).to_contain_text("SEND – Sent")
        expect(steps.nth(1)).to_contain_text("Relay")
        expect(steps.nth(1)).to_contain_text("250")
        c.shot("message-trace-timeline")

        c.nav("Receive connectors")
        assert c.cells("Client Relay EXCH01")[:3] == ["Client Relay EXCH01", "EXCH01", f"127.0.0.1:{m.port}"]
        c.shot("receive-connectors")
    finally:
        sink.stop()


def test_header_analyzer_shows_every_hop_of_mailhop_and_postfix(
        mailhop_factory: Callable[..., Mailhop], postfix_factory: Callable[..., Postfix], capture: Sink,
        page: Page) -> None:
    pf = postfix_factory("relay.contoso.test")
    m = mailhop_factory().start()
    m.cli("connector", "new", "Smarthost To Internet", "--usage", "internet", "--dns-routing-enabled", "false",
          "--smart-hosts", f"[127.0.0.1]:{pf.listeners[0].port}", "--address-spaces", "*")
    m.wait_config(1)
    send(m, "bob@fabrikam.test", "Outbound via smart host")
    [got] = wait_for(lambda: capture.for_recipient("bob@fabrikam.test"), what="delivery through Postfix")
    headers = got.data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    assert len(got.received()) == 2

    c = Console(page, m)
    c.sign_in(token(m))
    c.nav("Header analyzer")
    page.get_by_label("Message headers").fill(headers)
    page.get_by_role("button", name="Analyze").click()
    expect(page.get_by_role("heading", name="Analysis")).to_be_focused()
    hops = page.get_by_role("table").locator("tbody tr")
    expect(hops).to_have_count(2)
    # First to last: mailhop received it from swaks, then Postfix from mailhop.
    expect(hops.nth(0).locator("td").nth(1)).to_contain_text("exch01.contoso.test")
    expect(hops.nth(1).locator("td").nth(0)).to_contain_text("exch01.contoso.test")
    expect(hops.nth(1).locator("td").nth(1)).to_contain_text("relay.contoso.test")
    for i in range(2):
        expect(hops.nth(i).locator("td").nth(2)).to_contain_text("ESMTP")
        expect(hops.nth(i).locator("td").nth(3)).to_have_text("No")  # plain SMTP on loopback
        expect(hops.nth(i).locator("td").nth(6)).to_contain_text("No TLS")
    expect(page.locator("dl.summary")).to_contain_text("Outbound via smart host")
    expect(page.get_by_test_id("total-delay")).not_to_be_empty()
    chart = page.get_by_role("img", name="Delay per hop")
    expect(chart).to_have_attribute("aria-label", in_order("hop 1", "hop 2"))
    c.shot("header-analyzer")

    # A hop stamped before the one below it: clock skew is flagged.
    skewed = (
        "Received: from b.fabrikam.test (b.fabrikam.test [192.0.2.2]) by c.fabrikam.test with ESMTPS id 3;\r\n"
        " Mon, 2 Dec 2024 10:00:00 +0000\r\n"
        "Received: from a.contoso.test (a.contoso.test [192.0.2.1]) by b.fabrikam.test with ESMTP id 2;\r\n"
        " Mon, 2 Dec 2024 10:05:00 +0000\r\n"
        "Received: from client (client [192.0.2.9]) by a.contoso.test with ESMTPSA id 1;\r\n"
        " Mon, 2 Dec 2024 10:01:00 +0000\r\n"
        "Subject: skew\r\n"
    )
    page.get_by_role("button", name="Clear").click()
    page.get_by_label("Message headers").fill(skewed)
    page.get_by_label("Message headers").press("Control+Enter")
    expect(hops).to_have_count(3)
    expect(hops.nth(2).locator("td").nth(6)).to_contain_text("skew", ignore_case=True)
    expect(page.locator("tr.flagged")).not_to_have_count(0)
    c.shot("header-analyzer-skew")


def test_header_analyzer_page_copes_with_partial_answers(
        mailhop_factory: Callable[..., Mailhop], page: Page) -> None:
    """The page against answers of other shapes (keys missing, delays as text) and a non-JSON 500."""
    m = mailhop_factory().start()
    c = Console(page, m)
    c.sign_in(token(m))
    c.nav("Header analyzer")
    answer: dict[str, Any] = {
        "Hops": [
            {"Hop": 1, "From": "client", "FromIp": "192.0.2.9", "By": "a.contoso.test", "With": "ESMTPSA",
             "Tls": True, "TlsDetail": "TLSv1.3", "Time": "2024-12-02T10:01:00Z", "Delay": None, "Flags": []},
            {"Hop": 2, "From": "a.contoso.test", "By": "b.fabrikam.test", "With": "ESMTP", "Tls": False,
             "Time": "2024-12-02T10:05:00Z", "Delay": 240},
            {"Hop": 3, "By": "c.fabrikam.test", "Delay": "-00:05:00"},
        ],
        "Warnings": "one warning as a string",
    }
    page.route("**/api/headers/analyze", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(answer)))
    page.get_by_label("Message headers").fill("Received: from x by y; Mon, 2 Dec 2024 10:00:00 +0000")
    page.get_by_role("button", name="Analyze").click()
    hops = page.get_by_role("table").locator("tbody tr")
    expect(hops).to_have_count(3)
    expect(hops.nth(0).locator("td").nth(3)).to_have_text("Yes TLSv1.3")
    expect(hops.nth(0).locator("td").nth(6)).to_have_text("—")
    expect(hops.nth(1).locator("td").nth(5)).to_have_text("4 min 0 s")
    expect(hops.nth(1).locator("td").nth(6)).to_have_text("No TLS")
    expect(hops.nth(2).locator("td").nth(5)).to_have_text("−5 min 0 s")
    expect(hops.nth(2).locator("td").nth(6)).to_contain_text("Clock skew")
    expect(page.locator("tr.flagged")).to_have_count(2)
    expect(page.get_by_role("list", name="Warnings")).to_have_text("one warning as a string")
    expect(page.get_by_test_id("total-delay")).to_have_text("−1 min 0 s")  # the sum when the API gives none
    expect(page.get_by_role("img", name="Delay per hop")).to_be_visible()
    c.shot("header-analyzer-partial-answer")

    page.unroute("**/api/headers/analyze")
    page.route("**/api/headers/analyze", lambda route: route.fulfill(
        status=500, content_type="text/plain", body="Internal Server Error"))
    page.get_by_role("button", name="Analyze").click()
    expect(c.alert).to_have_text("500 Internal Server Error: Internal Server Error")


def test_every_page_renders_without_errors(mailhop_factory: Callable[..., Mailhop], page: Page) -> None:
    m = mailhop_factory().start()
    c = Console(page, m)
    c.sign_in(token(m))
    for label in ("Dashboard", "Send connectors", "Receive connectors", "Queues", "Message trace", "Header analyzer"):
        c.nav(label)
        expect(page.get_by_role("link", name=label, exact=True)).to_have_attribute("aria-current", "page")
        expect(c.alert).to_be_empty()
    # The console's files are served by the API itself, with no build step.
    response = page.request.get(c.url + "app.js")
    assert response.ok and "javascript" in response.headers["content-type"]
    assert json.loads(page.request.get(f"http://{admin_bind(m)}/api/session").text())["Name"] == "ops"
