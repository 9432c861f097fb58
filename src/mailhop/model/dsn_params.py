"""The DSN extension's parameters (RFC 3461): RET and ENVID on MAIL, NOTIFY and ORCPT on RCPT.

A message keeps its MAIL parameters, and each recipient its RCPT parameters, as the text that
is passed on to a next hop that offers DSN (``"RET=HDRS ENVID=QQ314159"``, ``"NOTIFY=SUCCESS,FAILURE
ORCPT=rfc822;bob@fabrikam.test"``), normalized: keywords in upper case, in a fixed order.
``mail_params`` and ``rcpt_params`` check what a client sent and return that text, or raise
``ValueError`` with what is wrong (the server answers ``501 5.5.4``); the accessors read it back.
"""

from __future__ import annotations

import re

_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*")
_ADDR_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
NOTIFY_KEYWORDS = ("SUCCESS", "FAILURE", "DELAY")
MAX_ENVID = 100   # RFC 3461 4.4
MAX_ORCPT = 500


def is_xtext(text: str) -> bool:
    return _XTEXT.fullmatch(text) is not None


def decode_xtext(text: str) -> str:
    return re.sub(r"\+([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), text)


def mail_params(ret: str | None = None, envid: str | None = None) -> str | None:
    parts = []
    if ret is not None:
        if ret.upper() not in ("FULL", "HDRS"):
            raise ValueError("RET must be FULL or HDRS")
        parts.append(f"RET={ret.upper()}")
    if envid is not None:
        if not envid or len(envid) > MAX_ENVID or not is_xtext(envid):
            raise ValueError("ENVID must be xtext of at most 100 characters")
        parts.append(f"ENVID={envid}")
    return " ".join(parts) or None


def rcpt_params(notify: str | None, orcpt: str | None) -> str | None:
    parts = []
    if notify is not None:
        words = [w.strip().upper() for w in notify.split(",")]
        if words == ["NEVER"]:
            parts.append("NOTIFY=NEVER")
        else:
            if "NEVER" in words:
                raise ValueError("NOTIFY=NEVER cannot be combined with other values")
            if not words or any(w not in NOTIFY_KEYWORDS for w in words):
                raise ValueError("NOTIFY takes NEVER, or SUCCESS, FAILURE and DELAY")
            parts.append("NOTIFY=" + ",".join(w for w in NOTIFY_KEYWORDS if w in words))
    if orcpt is not None:
        kind, sep, address = orcpt.partition(";")
        if not sep or not _ADDR_TYPE.fullmatch(kind) or not address or len(orcpt) > MAX_ORCPT or not is_xtext(address):
            raise ValueError("ORCPT must be addr-type;xtext (e.g. rfc822;bob@fabrikam.test)")
        parts.append(f"ORCPT={kind.lower()};{address}")
    return " ".join(parts) or None


def _value(params: str | None, key: str) -> str | None:
    for part in (params or "").split():
        name, _, value = part.partition("=")
        if name == key:
            return value
    return None


def notify(params: str | None) -> frozenset[str] | None:
    """The NOTIFY keywords asked for (``{"NEVER"}`` for NEVER), None when NOTIFY was not given."""
    value = _value(params, "NOTIFY")
    return frozenset(value.split(",")) if value else None


def wants(params: str | None, event: str) -> bool:
    """Whether a recipient asked to hear of ``event`` (SUCCESS, FAILURE, DELAY): without NOTIFY,
    failures and delays are reported and successes not (RFC 3461 4.1's default)."""
    asked = notify(params)
    if asked is None:
        return event != "SUCCESS"
    return event in asked


def ret(params: str | None) -> str | None:
    return _value(params, "RET")


def envid(params: str | None) -> str | None:
    return _value(params, "ENVID")


def orcpt(params: str | None) -> str | None:
    """ORCPT as the DSN's Original-Recipient shows it: ``rfc822;bob@fabrikam.test`` (xtext decoded)."""
    value = _value(params, "ORCPT")
    if value is None:
        return None
    kind, _, address = value.partition(";")
    return f"{kind};{decode_xtext(address)}"
