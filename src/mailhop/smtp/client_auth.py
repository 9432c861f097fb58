"""Smart-host authentication of the SMTP client: PLAIN or LOGIN (whichever is offered), or XOAUTH2.

Credentials go only where the plan allows: never in clear text when the plan requires
TLS (BasicAuthRequireTLS, XOAUTH2), and never to a mechanism the peer did not offer.
Secrets never reach the protocol log (``****`` in their place).  The ``ClientConnection``
calls this right after EHLO (and STARTTLS); it is the client's own code, apart only
to keep the session module readable.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from mailhop.errors import ConnectionFailure
from mailhop.outcome import Reply
from mailhop.smtp.session import AuthPlan, auth_mechanism

if TYPE_CHECKING:
    from mailhop.smtp.client import ClientConnection


async def authenticate(conn: ClientConnection, auth: AuthPlan) -> None:
    """AUTH as planned, or ConnectionFailure (451 4.7.0) naming why the credentials were not accepted."""
    where = conn._where
    mechanism = auth_mechanism(auth, conn.extensions, conn.tls_version is not None, where)

    def b64(text: str) -> str:
        return base64.b64encode(text.encode("utf-8")).decode("ascii")

    conn._trace(">", f"AUTH {mechanism} ****")
    if mechanism == "PLAIN":
        conn._write(f"AUTH PLAIN {b64(chr(0) + auth.username + chr(0) + auth.secret)}\r\n", log=False)
        answer = await conn._reply()
    elif mechanism == "XOAUTH2":
        conn._write(f"AUTH XOAUTH2 {b64(f'user={auth.username}{chr(1)}auth=Bearer {auth.secret}{chr(1)}{chr(1)}')}\r\n",
                    log=False)
        answer = await conn._reply()
        if answer.code == 334:  # an error report in a challenge: answer it empty to get the final reply
            conn._write("\r\n", log=False)
            answer = await conn._reply()
    else:
        answer = await conn._command("AUTH LOGIN")
        if answer.code == 334:
            conn._write(f"{b64(auth.username)}\r\n", log=False)
            answer = await conn._reply()
        if answer.code == 334:
            conn._write(f"{b64(auth.secret)}\r\n", log=False)
            answer = await conn._reply()
    if answer.code != 235:
        raise ConnectionFailure(Reply(451, "4.7.0", f"AUTH {mechanism} as {auth.username} to {where} "
                                      f"was refused: {answer}"), "auth")
    conn.authenticated_as = auth.username
