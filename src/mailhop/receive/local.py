"""Messages that arrive without SMTP: ``POST /api/messages`` (the tracking log's Source ``HTTP``)
and ``mailhop sendmail`` (Source ``PICKUP``, as Exchange names its pickup directory).

A message is either raw (``Sender``, ``Recipients``, ``Content``: an RFC 5322 message) or
structured (``From``, ``To``, ``Cc``, ``Bcc``, ``Subject``, ``TextBody``, ``HtmlBody``,
``Headers``, ``Attachments``), composed with Python's email package (``Bcc`` only in the
envelope).  Every message of a request is checked before any is queued: one bad field is a
``ValidationError`` naming it (``[2].Recipients[0]``), and nothing of the request is queued.
Then each goes the way an SMTP message goes after its DATA (``ReceiveHandler.accept``): the
Received: stamp ``with HTTP``, Message-ID and Date when missing, the hop count, DKIM signing,
routing, the commit before the answer.  Each message is committed on its own (all of its
recipients or none); when the store fails part-way, the answer says which were queued.  The
limits are those of a receive connector of its own, ``HTTP Submission`` or ``Pickup``
(``max_message_size`` and ``max_recipients_per_message`` at their defaults).
"""

from __future__ import annotations

import base64
import binascii
import email.policy
import re
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticError

from mailhop.clock import Clock
from mailhop.config import ReceiveConnectorSettings
from mailhop.dkim.keyring import Keyring
from mailhop.errors import ValidationError
from mailhop.queue.submission import Submission
from mailhop.receive.handler import ReceiveHandler
from mailhop.smtp.address import valid_address
from mailhop.smtp.server import Envelope, Session
from mailhop.smtp.stream import crlf

HTTP, PICKUP = "HTTP", "PICKUP"  # Session.via and the tracking log's Source
CONNECTORS = {HTTP: "HTTP Submission", PICKUP: "Pickup"}
MAX_MESSAGES = 1000
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext
# Set by the structured form itself: Headers may not say otherwise.
_COMPOSED = {"from", "to", "cc", "bcc", "subject", "mime-version", "content-type", "content-transfer-encoding"}


class Attachment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    Name: str = Field(min_length=1, max_length=255)
    ContentType: str = Field(default="application/octet-stream", pattern=r"^[\w.+-]+/[\w.+-]+$")
    Data: str  # base64


class RawMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    Sender: str
    Recipients: list[str] = Field(min_length=1)
    Content: str = Field(min_length=1)


class StructuredMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    Sender: str | None = None  # the envelope sender; From's address when absent
    From: str
    To: list[str] = Field(default_factory=list)
    Cc: list[str] = Field(default_factory=list)
    Bcc: list[str] = Field(default_factory=list)
    Subject: str = Field(default="", max_length=998)
    TextBody: str | None = None
    HtmlBody: str | None = None
    Headers: dict[str, str] = Field(default_factory=dict)
    Attachments: list[Attachment] = Field(default_factory=list)


def limits(via: str) -> ReceiveConnectorSettings:
    """The receive connector of ``HTTP`` or ``PICKUP``: its name and default limits."""
    return ReceiveConnectorSettings(name=CONNECTORS[via])


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON Schema with its ``$defs`` put in place (the OpenAPI document has no ``$defs``)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return dict(walk(schema))


def request_schema() -> dict[str, Any]:
    """The request body's JSON Schema (for the OpenAPI document): a message or an array of them."""
    one = {"oneOf": [_inlined(RawMessage.model_json_schema()), _inlined(StructuredMessage.model_json_schema())]}
    return {"oneOf": [one, {"type": "array", "items": one, "minItems": 1, "maxItems": MAX_MESSAGES}]}


class Prepared:
    """A message checked and made ready: envelope and RFC 5322 bytes (CRLF)."""

    def __init__(self, sender: str, recipients: list[str], content: bytes) -> None:
        self.sender = sender
        self.recipients = recipients
        self.content = content


def envelope(sender: str, recipients: list[str], content: bytes) -> Prepared:
    """A message whose envelope came from elsewhere (``mailhop sendmail`` over the control
    socket), its addresses checked as the API checks them."""
    if not recipients:
        raise ValidationError("Recipients: a message needs at least one recipient")
    return Prepared(_address(sender, "Sender") if sender else "",
                    [_address(r, f"Recipients[{i}]") for i, r in enumerate(recipients)], content)


def _address(value: str, where: str) -> str:
    value = value.strip()
    if not valid_address(value):
        raise ValidationError(f"{where}: '{value}' is not an e-mail address")
    return value


def _mailbox(value: str, where: str) -> Address:
    """``"Name <user@domain>"`` or ``user@domain`` as an email Address."""
    match = re.fullmatch(r"\s*(?:(.*?)\s*<([^<>]+)>|([^<>\s]+))\s*", value)
    if not match:
        raise ValidationError(f"{where}: '{value}' is not an e-mail address")
    name, bracketed, bare = match.groups()
    addr = _address(bracketed or bare, where)
    local, _, domain = addr.rpartition("@")
    try:
        return Address(display_name=(name or "").strip('"'), username=local, domain=domain)
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"{where}: '{value}': {exc}") from None


def _raw(m: RawMessage, at: str) -> Prepared:
    sender = "" if m.Sender.strip() in ("", "<>") else _address(m.Sender, f"{at}Sender")
    recipients = [_address(r, f"{at}Recipients[{i}]") for i, r in enumerate(m.Recipients)]
    content = crlf(m.Content.encode("utf-8"))
    if not content.endswith(b"\r\n"):
        content += b"\r\n"
    return Prepared(sender, recipients, content)


def _structured(m: StructuredMessage, at: str) -> Prepared:
    msg = EmailMessage(policy=email.policy.SMTP)
    sender_box = _mailbox(m.From, f"{at}From")
    msg["From"] = sender_box
    lists = {"To": m.To, "Cc": m.Cc, "Bcc": m.Bcc}
    boxes = {key: [_mailbox(v, f"{at}{key}[{i}]") for i, v in enumerate(values)] for key, values in lists.items()}
    recipients = [b.addr_spec for key in ("To", "Cc", "Bcc") for b in boxes[key]]
    if not recipients:
        raise ValidationError(f"{at}To: a message needs at least one recipient in To, Cc or Bcc")
    for key in ("To", "Cc"):
        if boxes[key]:
            msg[key] = boxes[key]
    if m.Subject:
        msg["Subject"] = m.Subject
    for name, value in m.Headers.items():
        where = f"{at}Headers.{name}"
        if not _HEADER_NAME.fullmatch(name) or name.lower() in _COMPOSED:
            raise ValidationError(f"{where}: not a header field that may be set here")
        if "\r" in value or "\n" in value:
            raise ValidationError(f"{where}: a header value may not hold a line break")
        msg[name] = value
    if m.TextBody is None and m.HtmlBody is None:
        msg.set_content("")
    elif m.HtmlBody is None:
        msg.set_content(m.TextBody or "")
    else:
        msg.set_content(m.TextBody or "")
        msg.add_alternative(m.HtmlBody, subtype="html")
    for i, a in enumerate(m.Attachments):
        try:
            data = base64.b64decode(a.Data, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError(f"{at}Attachments[{i}].Data: not base64") from None
        maintype, subtype = a.ContentType.split("/", 1)
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=a.Name)
    sender = _address(m.Sender, f"{at}Sender") if m.Sender else sender_box.addr_spec
    return Prepared(sender, recipients, msg.as_bytes())


def prepare(body: Any, limits: ReceiveConnectorSettings) -> list[Prepared]:
    """Every message of a request checked and composed, or a ValidationError naming the field."""
    many = isinstance(body, list)
    items = body if many else [body]
    if not items:
        raise ValidationError("the request holds no message")
    if len(items) > MAX_MESSAGES:
        raise ValidationError(f"at most {MAX_MESSAGES} messages in one request, not {len(items)}")
    out = []
    for n, item in enumerate(items):
        at = f"[{n}]." if many else ""
        if not isinstance(item, dict):
            raise ValidationError(f"{at or 'the request'}: a message is a JSON object")
        model: type[RawMessage] | type[StructuredMessage] = RawMessage if "Content" in item else StructuredMessage
        try:
            parsed = model.model_validate(item)
        except PydanticError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in first["loc"]).replace(".[", "[")
            raise ValidationError(f"{at}{field}: {first['msg']}") from None
        prepared = _raw(parsed, at) if isinstance(parsed, RawMessage) else _structured(parsed, at)
        check_limits(prepared, limits, at)
        out.append(prepared)
    return out


def check_limits(m: Prepared, limits: ReceiveConnectorSettings, at: str = "") -> None:
    if len(m.recipients) > limits.max_recipients_per_message:
        raise ValidationError(f"{at}Recipients: more than {limits.max_recipients_per_message} recipients")
    if limits.max_message_size and len(m.content) > limits.max_message_size:
        raise ValidationError(f"{at}Content: the message is larger than {limits.max_message_size} bytes")


class LocalSubmission:
    """Queues prepared messages through a receive handler of its own (``HTTP Submission``, ``Pickup``)."""

    def __init__(self, handler: ReceiveHandler, via: str) -> None:
        self.handler = handler
        self.limits = handler.connector
        self.via = via

    @classmethod
    def over(cls, submission: Submission, via: str, clock: Clock, keyring: Keyring | None) -> LocalSubmission:
        return cls(ReceiveHandler(limits(via), submission, None, clock, keyring), via)

    async def submit(self, body: Any, client_ip: str, user: str) -> dict[str, Any]:
        messages = prepare(body, self.limits)
        results: list[dict[str, Any]] = []
        for n, m in enumerate(messages):
            results.append(await self.submit_one(m, client_ip, user))
            if results[-1]["Status"] != "Queued":
                # The store failed: what is queued stays queued, the rest is not tried.
                results += [{"Status": "NotQueued"} for _ in messages[n + 1:]]
                break
        return {"Atomicity": "PerMessage", "Messages": results}

    async def submit_one(self, m: Prepared, client_ip: str, user: str) -> dict[str, Any]:
        """One message (its addresses checked): ``Queued`` with its ids and each recipient, or ``NotQueued``."""
        check_limits(m, self.limits)
        session = Session(client_ip, 0, "", 0, helo="localhost", esmtp=True, auth_user=user, via=self.via)
        params: dict[str, str | None] = {}
        if any(ord(c) > 127 for c in m.sender + "".join(m.recipients)):
            params["SMTPUTF8"] = None
        if any(b > 127 for b in m.content):
            params["BODY"] = "8BITMIME"
        envelope = Envelope(m.sender, params, list(m.recipients), [None] * len(m.recipients))
        sink = self.handler.data_sink(session, envelope)
        try:
            sink.write(m.content)
            reply, accepted = await self.handler.accept(session, envelope, sink)
        finally:
            sink.close()
        if accepted is None:
            return {"Status": "NotQueued", "Error": str(reply)}
        return {
            "Status": "Queued",
            "InternalMessageId": accepted.info.id,
            "MessageId": accepted.info.message_id,
            "Recipients": [{"Address": r, "Status": "Failed", "Error": str(accepted.failed[r])}
                           if r in accepted.failed else {"Address": r, "Status": "Queued"} for r in m.recipients],
        }
