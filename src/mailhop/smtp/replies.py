"""SMTP replies with enhanced status codes (RFC 3463), and the ones mailhop sends.

A ``Reply`` is what a peer said or what we say: code, enhanced status, text.
Its class (2, 4 or 5) is the one classification of an outcome that every later
step trusts: 2 delivered, 4 temporary, 5 permanent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)")


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    enhanced: str
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 400

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    @property
    def kind(self) -> str:
        return "ok" if self.ok else "temp" if self.temporary else "perm"

    def __str__(self) -> str:
        parts = [str(self.code)]
        if self.enhanced:
            parts.append(self.enhanced)
        if self.text:
            parts.append(self.text)
        return " ".join(parts)

    def lines(self) -> list[str]:
        """Wire form, one string per line (multi-line text becomes continuation lines)."""
        texts = self.text.split("\n") if self.text else [""]
        out = []
        for i, text in enumerate(texts):
            sep = "-" if i < len(texts) - 1 else " "
            body = f"{self.enhanced} {text}".strip() if self.enhanced else text
            out.append(f"{self.code}{sep}{body}".rstrip())
        return out

    def wire(self) -> bytes:
        return ("\r\n".join(self.lines()) + "\r\n").encode("utf-8", "replace")

    @classmethod
    def parse(cls, code: int, message: str) -> Reply:
        """Build a Reply from a peer's code and text, splitting off an enhanced code if present."""
        text = " ".join(line.strip() for line in message.splitlines()) if message else ""
        m = _ENHANCED.match(text)
        if m:  # Exchange pairs 550 with 4.4.7 (QUEUE.Expired): keep what the peer said
            return cls(code, f"{m.group(1)}.{m.group(2)}.{m.group(3)}", text[m.end():].strip())
        default = {2: "2.0.0", 3: "", 4: "4.0.0", 5: "5.0.0"}.get(code // 100, "")
        return cls(code, default, text)

    @classmethod
    def from_string(cls, text: str) -> Reply:
        """Parse ``451 4.4.0 text`` as stored in a queue's LastError."""
        m = re.match(r"^(\d{3})(?:[ -](.*))?$", text.strip(), re.S)
        if not m:
            return cls(451, "4.0.0", text)
        return cls.parse(int(m.group(1)), m.group(2) or "")


def reply(code: int, enhanced: str, text: str) -> Reply:
    return Reply(code, enhanced, text)


# Replies of the receive side (Exchange's texts where Exchange has one).
RELAY_DENIED = Reply(550, "5.7.54", "SMTP; Unable to relay recipient in non-accepted domain")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")
MESSAGE_TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
SHUTTING_DOWN = Reply(421, "4.3.2", "Service not available, closing transmission channel")
QUEUE_WRITE_FAILED = Reply(451, "4.3.0", "Temporary failure, message not queued; try again later")
INSUFFICIENT_RESOURCES = Reply(452, "4.3.1", "Insufficient system resources")

# Routing and queue outcomes (Exchange's AckReason texts).
ROUTING_SIZE_LIMIT = Reply(550, "5.3.4", "ROUTING.SizeLimit; message size exceeds fixed maximum size for route")
NO_CONNECTOR = "A matching connector cannot be found to route the external recipient"
HOP_COUNT_EXCEEDED = Reply(550, "5.4.6", "Hop count exceeded - possible mail loop")
QUEUE_EXPIRED = Reply(550, "4.4.7", "QUEUE.Expired; message expired")
QUEUE_ADMIN = Reply(550, "4.3.2", "QUEUE.Admin; message deleted by administrative action")
POISON = Reply(550, "5.3.0", "Too many related errors")
