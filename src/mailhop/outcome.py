"""Replies and delivery outcomes: what a peer said, and what it means for a recipient.

A ``Reply`` is what a peer said or what we say: code, enhanced status (RFC 3463), text.
Its class is the one classification of an outcome that every later step trusts
(DESIGN rule 2): 2xx delivered, 4xx temporary, 5xx permanent; ``Reply.outcome``
names it.  This module sits below every other one and imports nothing of mailhop,
so the model, routing, the store and the queue speak of outcomes without knowing
the SMTP wire.  Parsing never raises: a peer's text that is not what RFC 3463
describes keeps the class's default enhanced code.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Outcome(enum.Enum):
    """What a reply means for the recipient it answers."""

    DELIVERED = "delivered"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"


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
    def outcome(self) -> Outcome:
        return Outcome.DELIVERED if self.ok else Outcome.TEMPORARY if self.temporary else Outcome.PERMANENT

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


# Routing and queue outcomes (Exchange's AckReason texts).
ROUTING_SIZE_LIMIT = Reply(550, "5.3.4", "ROUTING.SizeLimit; message size exceeds fixed maximum size for route")
NO_CONNECTOR = "A matching connector cannot be found to route the external recipient"
HOP_COUNT_EXCEEDED = Reply(550, "5.4.6", "Hop count exceeded - possible mail loop")
QUEUE_EXPIRED = Reply(550, "4.4.7", "QUEUE.Expired; message expired")
QUEUE_ADMIN = Reply(550, "4.3.2", "QUEUE.Admin; message deleted by administrative action")
POISON = Reply(550, "5.3.0", "Too many related errors")
