"""``/api/dkim``: DKIM signing configs over HTTP (Exchange Online's *-DkimSigningConfig).

Each route is one call of ``services.dkim``, the same the ``mailhop dkim`` command makes,
so the rules and their one-line messages are the service's: a bad domain, key size or
algorithm is a ValidationError (400), a domain that has a config already a ConflictError
(409), one that has none NotFoundError (404).  Bodies are keyed by Exchange's names and
refuse keys they do not know.  ``check`` looks at DNS and records what it saw (and may
complete a pending rotation), so it needs a full-control token like every change.
No answer holds a private key: the service returns public records only.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

from fastapi import Body, FastAPI
from pydantic import BaseModel, ConfigDict, Field

from mailhop.admin.common import ERRORS, JSON, AdminContext, Reader, Writer


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


_KEY_SIZE = "RSA key size in bits, 1024 to 4096"


class DkimNew(_Body):
    """New-DkimSigningConfig: keys are made for selector1 (and selector1-ed25519) and sign at once."""

    Domain: str = Field(description="The signing domain (d=)")
    Algorithms: list[str] | str | None = Field(
        default=None, description="rsa-sha256 and/or ed25519-sha256, a list or comma-separated (default: both)")
    KeySize: int | None = Field(default=None, description=f"{_KEY_SIZE} (default 2048)")
    Enabled: bool = Field(default=True, description="Sign with it")
    SubDomains: bool = Field(default=False, description="Also sign mail whose From: is in a sub-domain")


class DkimChange(_Body):
    """Set-DkimSigningConfig: give at least one."""

    Enabled: bool | None = None
    SubDomains: bool | None = None


class DkimRotation(_Body):
    """Rotate-DkimSigningConfig: new keys in the other selector, which signs once its records are published."""

    KeySize: int | None = Field(default=None, description=f"{_KEY_SIZE} (default: the config's)")
    Force: bool = Field(default=False, description="Sign with the new keys at once, published or not")


def add_routes(app: FastAPI, ctx: AdminContext, api: str) -> None:
    # On the app itself (not an included APIRouter): app.routes lists every route, flat.
    tags: list[str | Enum] = ["dkim"]

    @app.get(f"{api}/dkim", tags=tags, responses=ERRORS)
    async def list_dkim(who: Reader) -> list[JSON]:
        return await ctx.services.dkim.list()

    @app.get(f"{api}/dkim/{{domain}}", tags=tags, responses=ERRORS)
    async def get_dkim(domain: str, who: Reader) -> JSON:
        return await ctx.services.dkim.get(domain)

    @app.post(f"{api}/dkim", status_code=201, tags=tags, responses=ERRORS)
    async def new_dkim(body: DkimNew, who: Writer) -> JSON:
        return await ctx.services.dkim.new(body.Domain, body.Algorithms, body.KeySize, body.Enabled, body.SubDomains)

    @app.patch(f"{api}/dkim/{{domain}}", tags=tags, responses=ERRORS)
    async def set_dkim(domain: str, body: DkimChange, who: Writer) -> JSON:
        return await ctx.services.dkim.set(domain, body.Enabled, body.SubDomains)

    @app.post(f"{api}/dkim/{{domain}}/check", tags=tags, responses=ERRORS)
    async def check_dkim(domain: str, who: Writer) -> JSON:
        return await ctx.services.dkim.show(domain)

    @app.post(f"{api}/dkim/{{domain}}/rotate", tags=tags, responses=ERRORS)
    async def rotate_dkim(domain: str, who: Writer, body: Annotated[DkimRotation | None, Body()] = None) -> JSON:
        rotation = body or DkimRotation()
        return await ctx.services.dkim.rotate(domain, rotation.KeySize, rotation.Force)

    @app.delete(f"{api}/dkim/{{domain}}", tags=tags, responses=ERRORS)
    async def remove_dkim(domain: str, who: Writer) -> JSON:
        return {"Identity": await ctx.services.dkim.remove(domain), "Removed": True}

