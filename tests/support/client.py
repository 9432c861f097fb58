"""An async SMTP client for in-process tests (aiosmtplib): submit and see the replies."""

from __future__ import annotations

from dataclasses import dataclass

import aiosmtplib


@dataclass
class Submitted:
    code: int
    text: str
    refused: dict[str, tuple[int, str]]

    @property
    def queue_id(self) -> int:
        return int(self.text.rsplit("queued as", 1)[1].strip())


def make_message(subject: str = "test", body: str = "Hello.\r\n", headers: dict[str, str] | None = None,
                 sender: str = "alice@contoso.test", to: str = "bob@fabrikam.test") -> bytes:
    lines = [f"From: <{sender}>", f"To: <{to}>", f"Subject: {subject}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


async def submit(port: int, sender: str, recipients: list[str], data: bytes | None = None,
                 host: str = "127.0.0.1", source: str | None = None) -> Submitted:
    data = data if data is not None else make_message(sender=sender, to=recipients[0])
    smtp = aiosmtplib.SMTP(hostname=host, port=port, start_tls=False,
                           source_address=(source, 0) if source else None)
    await smtp.connect()
    try:
        refused, text = await smtp.sendmail(sender, recipients, data)
        return Submitted(250, text, {k: (v.code, v.message) for k, v in refused.items()})
    finally:
        await smtp.quit()
