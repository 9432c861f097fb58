"""``/api/domains``: what a sending domain looks like to the receivers of its mail.

``readiness`` is ``services.readiness.check``, where the rules of that look live: SPF,
DKIM, DMARC, reverse DNS of the sending addresses, MTA-STS and TLS-RPT, each row Pass,
Warn or Fail with its evidence and the fix.  It only reads (the store and DNS; the
MTA-STS policy itself is not fetched), so a read-only token may ask.  Without ``ip`` the service takes the addresses
the server sends from; a bad domain or address is its ValidationError (400).

``tls`` is ``services.tls.explain`` (``mailhop tls explain``): the TLS
policy each MX host of the domain gets now (DANE, MTA-STS, the connector's, opportunistic).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Query

from mailhop.admin.common import ERRORS, JSON, AdminContext, Reader


def add_routes(app: FastAPI, ctx: AdminContext, api: str) -> None:
    @app.get(f"{api}/domains/{{domain}}/readiness", tags=["domains"], responses=ERRORS)
    async def domain_readiness(domain: str, who: Reader,
                               ip: Annotated[list[str] | None, Query()] = None) -> JSON:
        return await ctx.services.readiness.check(domain, ip or None)


    @app.get(f"{api}/domains/{{domain}}/tls", tags=["domains"], responses=ERRORS)
    async def domain_tls(domain: str, who: Reader, connector: str | None = None) -> JSON:
        return await ctx.services.tls.explain(domain, connector)
