"""DKIM signing configs and domain readiness through the admin API, against a whole service in-process.

A dnsmasq answers the service's DNS: nothing at first (every name under ``test`` is
NXDOMAIN), then the TXT records the API told us to publish, so ``check`` really looks.
Create, list, get, set, check, rotate (signing moves once the new records are seen),
remove; a read-only token reads but changes nothing; bad input gets the service's own
one-line message and changes nothing; no answer carries a private key.  Then the
readiness of a domain: with nothing published every mail-authentication row fails, with
SPF and DMARC published those rows pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from mailhop.errors import ValidationError
from mailhop.model import dkim as model
from mailhop.sealing import Sealer
from tests.integration.test_admin_api import Api, api_factory, assert_error
from tests.support.dkim_keys import assert_absent, assert_public_only, fragments
from tests.support.dns import DnsServer

__all__ = ["api_factory"]  # test_admin_api's fixture, requested by name below

DOMAIN = "contoso.test"
RESULTS = {"Pass", "Warn", "Fail"}


@pytest.fixture
def zone() -> Iterator[DnsServer]:
    server = DnsServer().start()
    yield server
    server.stop()


@pytest.fixture
async def dapi(api_factory: Callable[..., Any], zone: DnsServer) -> Api:
    made: Api = await api_factory(dns={"nameservers": [zone.nameserver], "timeout": "1s", "lifetime": "3s"})
    return made


def publish(zone: DnsServer, *configs: dict[str, Any], **extra: list[str]) -> None:
    txt: dict[str, list[str]] = {r["Name"]: [r["Value"]] for c in configs for r in c["Records"]}
    txt.update(extra)
    zone.restart(txt=txt)


def model_error(fn: Callable[..., Any], *args: Any) -> str:
    with pytest.raises(ValidationError) as info:
        fn(*args)
    return str(info.value)


async def snapshot(api: Api) -> dict[str, Any]:
    configs = await api.json("/api/dkim")
    return {"configs": configs,
            "keys": {c["Domain"]: await api.store.dkim.private_keys(c["Domain"]) for c in configs}}


async def new_config(api: Api, domain: str = DOMAIN, **values: Any) -> dict[str, Any]:
    r = await api.full.post("/api/dkim", json={"Domain": domain, "KeySize": 1024, **values})
    assert r.status_code == 201, r.text
    made: dict[str, Any] = r.json()
    return made


# --- the life of a signing config ------------------------------------------------------------


async def test_dkim_config_create_list_get_set_check_rotate_remove(dapi: Api, zone: DnsServer) -> None:
    api = dapi
    assert await api.json("/api/dkim") == []
    responses: list[httpx.Response] = []

    async def call(method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        r = await api.full.request(method, path, **kwargs)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        responses.append(r)
        return r.json()

    created = await call("POST", "/api/dkim", 201, json={"Domain": "Contoso.Test.", "KeySize": 1024})
    assert (created["Domain"], created["Identity"], created["Enabled"], created["SubDomains"]) == \
        (DOMAIN, DOMAIN, True, False)
    assert created["Algorithms"] == ["rsa-sha256", "ed25519-sha256"] and created["KeySize"] == 1024
    assert created["ActiveSelector"] == "selector1" and created["PendingSelector"] is None
    assert created["ActiveSelectors"] == ["selector1", "selector1-ed25519"]
    assert created["Selector1DnsName"] == "selector1._domainkey.contoso.test"
    assert created["Selector1Ed25519DnsName"] == "selector1-ed25519._domainkey.contoso.test"
    assert [(r["Name"], r["Type"], r["Role"], r["Algorithm"]) for r in created["Records"]] == [
        ("selector1._domainkey.contoso.test", "TXT", "Active", "rsa-sha256"),
        ("selector1-ed25519._domainkey.contoso.test", "TXT", "Active", "ed25519-sha256")]
    assert created["Records"][0]["Value"] == created["Selector1PublicKey"]
    # The same view the service (and so the CLI) gives.
    assert created == await api.t.service.services.dkim.get(DOMAIN)

    assert await call("GET", "/api/dkim") == [created]
    assert await call("GET", "/api/dkim/CONTOSO.test") == created
    assert await api.json("/api/dkim/contoso.test", api.reader) == created

    # Nothing published yet: the look at DNS says so, and records when it looked.
    checked = await call("POST", "/api/dkim/contoso.test/check")
    assert checked["Status"] == model.NOT_PUBLISHED and checked["LastChecked"]
    assert "selector1._domainkey.contoso.test" in checked["StatusDetail"]
    assert (await call("GET", "/api/dkim/contoso.test"))["Status"] == model.NOT_PUBLISHED

    off = await call("PATCH", "/api/dkim/contoso.test", json={"Enabled": False})
    assert off["Enabled"] is False and off["Status"] == model.DISABLED
    on = await call("PATCH", "/api/dkim/contoso.test", json={"Enabled": True, "SubDomains": True})
    assert on["Enabled"] is True and on["SubDomains"] is True
    assert (await api.store.dkim.get(DOMAIN)).sub_domains is True

    publish(zone, created)
    valid = await call("POST", "/api/dkim/contoso.test/check")
    assert valid["Status"] == model.VALID, valid["StatusDetail"]

    rotated = await call("POST", "/api/dkim/contoso.test/rotate", json={"KeySize": 1024})
    assert rotated["ActiveSelector"] == "selector1" and rotated["PendingSelector"] == "selector2"
    assert [(r["Selector"], r["Role"]) for r in rotated["Records"]] == [
        ("selector1", "Active"), ("selector1-ed25519", "Active"),
        ("selector2", "Pending"), ("selector2-ed25519", "Pending")]
    # Not published yet: signing stays where it is.
    still = await call("POST", "/api/dkim/contoso.test/check")
    assert still["ActiveSelector"] == "selector1" and still["PendingSelector"] == "selector2"

    publish(zone, rotated)
    switched = await call("POST", "/api/dkim/contoso.test/check")
    assert switched["ActiveSelector"] == "selector2" and switched["PendingSelector"] is None
    assert switched["Status"] == model.VALID
    assert [(r["Selector"], r["Role"]) for r in switched["Records"]][:2] == [
        ("selector2", "Active"), ("selector2-ed25519", "Active")]
    assert switched["InactiveSelectorRemovableAfter"]

    # Every answer so far held public keys only.
    secrets = await fragments(api.store, Sealer(api.t.service.settings.server.secret_key_path), [DOMAIN])
    assert_public_only(switched["Records"], secrets)
    responses.append(await api.reader.get("/api/dkim"))
    for r in responses:
        assert_absent(f"{r.request.method} {r.request.url}", r.text, secrets)

    assert await call("DELETE", "/api/dkim/Contoso.test") == {"Identity": DOMAIN, "Removed": True}
    assert await api.json("/api/dkim") == []
    assert_error(await api.full.get("/api/dkim/contoso.test"), 404, "There is no DKIM signing config for 'contoso.test'")


async def test_rotate_without_a_body_and_forced(dapi: Api) -> None:
    await new_config(dapi, Algorithms="rsa-sha256")
    r = await dapi.full.post("/api/dkim/contoso.test/rotate")
    assert r.status_code == 200, r.text
    assert r.json()["PendingSelector"] == "selector2" and r.json()["KeySize"] == 1024
    r = await dapi.full.post("/api/dkim/contoso.test/rotate", json={"Force": True})
    assert r.status_code == 200, r.text
    assert (r.json()["ActiveSelector"], r.json()["PendingSelector"]) == ("selector2", None)
    # Keys that may still sign queued mail are not replaced unless forced.
    before = await snapshot(dapi)
    r = await dapi.full.post("/api/dkim/contoso.test/rotate", json={})
    assert_error(r, 400)
    assert "--force" in r.json()["detail"]
    assert await snapshot(dapi) == before


# --- who may change what ----------------------------------------------------------------------


async def test_read_only_token_reads_dkim_but_cannot_change_it(dapi: Api) -> None:
    await new_config(dapi)
    before = await snapshot(dapi)
    for method, path, body in (
        ("POST", "/api/dkim", {"Domain": "fabrikam.test", "KeySize": 1024}),
        ("PATCH", "/api/dkim/contoso.test", {"Enabled": False}),
        ("POST", "/api/dkim/contoso.test/check", None),
        ("POST", "/api/dkim/contoso.test/rotate", {"KeySize": 1024}),
        ("POST", "/api/dkim/contoso.test/rotate", None),
        ("DELETE", "/api/dkim/contoso.test", None),
    ):
        r = await dapi.reader.request(method, path, json=body)
        assert_error(r, 403, "The token 'reader' is read-only")
        assert_error(await dapi.anon.request(method, path, json=body), 401)
    assert await dapi.json("/api/dkim", dapi.reader) == before["configs"]
    assert await dapi.json("/api/dkim/contoso.test", dapi.reader) == before["configs"][0]
    assert await snapshot(dapi) == before


# --- bad input --------------------------------------------------------------------------------


async def test_bad_dkim_input_gets_one_line_and_changes_nothing(dapi: Api) -> None:
    await new_config(dapi)
    before = await snapshot(dapi)
    bad_domain = model_error(model.domain_name, "not a domain")
    small = model_error(model.key_size, 512)
    unknown = model_error(model.algorithms, ["rsa-sha1"])
    post = dapi.full.post
    assert_error(await post("/api/dkim", json={"Domain": "not a domain"}), 400, bad_domain)
    assert_error(await post("/api/dkim", json={"Domain": "fabrikam.test", "KeySize": 512}), 400, small)
    assert_error(await post("/api/dkim", json={"Domain": "fabrikam.test", "KeySize": 8192}), 400,
                 model_error(model.key_size, 8192))
    assert_error(await post("/api/dkim", json={"Domain": "fabrikam.test", "Algorithms": ["rsa-sha1"]}), 400, unknown)
    assert_error(await post("/api/dkim", json={"Domain": "fabrikam.test", "Algorithms": "rsa-sha256,dsa"}), 400,
                 model_error(model.algorithms, "rsa-sha256,dsa"))
    assert_error(await post("/api/dkim", json={"Domain": "fabrikam.test", "Algorithms": []}), 400,
                 model_error(model.algorithms, []))
    assert_error(await post("/api/dkim", json={"Domain": "fabrikam.test", "KeySize": "big"}), 400)
    assert_error(await post("/api/dkim", json={"Domain": "fabrikam.test", "Selector": "s1"}), 400)
    assert_error(await post("/api/dkim", json={"KeySize": 1024}), 400)
    assert_error(await post("/api/dkim", content=b"Domain=fabrikam.test"), 400)
    assert_error(await post("/api/dkim", json={"Domain": "Contoso.test", "KeySize": 1024}), 409,
                 "A DKIM signing config for 'contoso.test' already exists")

    patch = dapi.full.patch
    assert_error(await patch("/api/dkim/contoso.test", json={}), 400, "nothing to change: give Enabled or SubDomains")
    assert_error(await patch("/api/dkim/contoso.test", json={"Enabled": "maybe"}), 400)
    assert_error(await patch("/api/dkim/contoso.test", json={"KeySize": 2048}), 400)
    assert_error(await post("/api/dkim/contoso.test/rotate", json={"KeySize": 512}), 400, small)
    assert_error(await post("/api/dkim/contoso.test/rotate", json={"Force": "perhaps"}), 400)

    missing = "There is no DKIM signing config for 'fabrikam.test'"
    assert_error(await dapi.full.get("/api/dkim/fabrikam.test"), 404, missing)
    assert_error(await patch("/api/dkim/fabrikam.test", json={"Enabled": False}), 404, missing)
    assert_error(await post("/api/dkim/fabrikam.test/check"), 404, missing)
    assert_error(await post("/api/dkim/fabrikam.test/rotate"), 404, missing)
    assert_error(await dapi.full.delete("/api/dkim/fabrikam.test"), 404, missing)
    assert_error(await dapi.full.get("/api/dkim/not a domain"), 400, bad_domain)
    assert_error(await dapi.full.delete("/api/dkim/not a domain"), 400, bad_domain)
    assert await snapshot(dapi) == before


# --- readiness ----------------------------------------------------------------------------------


def rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    assert report["Result"] in RESULTS
    out = {}
    for row in report["Checks"]:
        assert row["Result"] in RESULTS and isinstance(row["Evidence"], str) and row["Evidence"], row
        assert isinstance(row["Fix"], str), row
        if row["Result"] != "Pass":
            assert row["Fix"], f"a {row['Result']} row without a fix: {row}"
        out.setdefault(row["Check"], row)
    assert set(out) <= {"SPF", "DKIM", "DMARC", "ReverseDNS", "MTA-STS", "TLS-RPT"}, set(out)
    return out


async def test_readiness_of_a_domain_with_nothing_published_fails(dapi: Api) -> None:
    for client in (dapi.full, dapi.reader):
        r = await client.get("/api/domains/contoso.test/readiness", params={"ip": ["127.0.0.1", "127.0.0.2"]})
        assert r.status_code == 200, r.text
        report = r.json()
        assert report["Domain"] == DOMAIN and report["SendingIps"] == ["127.0.0.1", "127.0.0.2"]
        assert report["Result"] == "Fail"
        checks = rows(report)
        assert set(checks) == {"SPF", "DKIM", "DMARC", "ReverseDNS", "MTA-STS", "TLS-RPT"}
        for name in ("SPF", "DKIM", "DMARC", "ReverseDNS"):
            assert checks[name]["Result"] == "Fail", checks[name]
    assert_error(await dapi.anon.get("/api/domains/contoso.test/readiness"), 401)
    assert_error(await dapi.full.get("/api/domains/not a domain/readiness"), 400)
    assert_error(await dapi.full.get("/api/domains/contoso.test/readiness", params={"ip": "not-an-ip"}), 400)


async def test_readiness_passes_what_is_published(dapi: Api, zone: DnsServer) -> None:
    config = await new_config(dapi)
    publish(zone, config, **{DOMAIN: ["v=spf1 ip4:127.0.0.1 -all"],
                             f"_dmarc.{DOMAIN}": ["v=DMARC1; p=reject; rua=mailto:dmarc@contoso.test"]})
    r = await dapi.reader.get("/api/domains/Contoso.Test/readiness", params={"ip": "127.0.0.1"})
    assert r.status_code == 200, r.text
    checks = rows(r.json())
    assert checks["SPF"]["Result"] == "Pass", checks["SPF"]
    assert checks["DMARC"]["Result"] == "Pass", checks["DMARC"]
    assert checks["DKIM"]["Result"] == "Pass", checks["DKIM"]
    assert checks["ReverseDNS"]["Result"] == "Fail"  # no PTR for 127.0.0.1 in this zone
