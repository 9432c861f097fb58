"""Making DKIM-Signature header fields (RFC 6376, Ed25519 per RFC 8463), with ``cryptography``.

dkimpy signs a message it holds whole; here the body hash comes from the stream as the
message is spooled (``dkim.canon``), so only the header is signed here: the header
fields named in ``h=`` in relaxed form, then the signature field itself with an empty
``b=``, hashed with SHA-256 and signed (RSA: PKCS#1 v1.5; Ed25519: the SHA-256 digest of
that data, as RFC 8463 section 3 says).  dkimpy and OpenDKIM verify the result in the
tests.

What is signed: ``SIGNED`` in that order, each as many times as it occurs; From always
once more than it occurs, List-Unsubscribe and List-Unsubscribe-Post too when present
(over-signing: adding another instance breaks the signature).  Relaxed/relaxed, no
``l=``, a ``t=`` timestamp.  A signature already on the message from the same ``d=`` and
selector that verifies is not made again (a message that passes through a second server
of the organization).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from mailhop.dkim.canon import header_fields, relaxed_header
from mailhop.dkim.keys import PrivateKey, tags

SIGNED = (
    "from", "to", "cc", "subject", "date", "message-id", "reply-to", "in-reply-to", "references",
    "mime-version", "content-type", "content-transfer-encoding", "list-id", "list-unsubscribe",
    "list-unsubscribe-post",
)
OVERSIGNED = ("from", "list-unsubscribe", "list-unsubscribe-post")
FOLD = 72
_B_TAG = re.compile(rb"(^|;)([ \t\r\n]*b[ \t\r\n]*=)[^;]*")


@dataclass(frozen=True, slots=True)
class SigningKey:
    domain: str
    selector: str
    algorithm: str
    private: PrivateKey


def header_names(fields: Sequence[tuple[str, bytes]]) -> list[str]:
    present = [name for name, _ in fields]
    names: list[str] = []
    for name in SIGNED:
        n = present.count(name)
        if name in OVERSIGNED and (n or name == "from"):
            n += 1
        names += [name] * n
    return names


def _selected(fields: Sequence[tuple[str, bytes]], names: Sequence[str]) -> bytes:
    """The header part of the hash input: for each name, the last instance not yet used
    (RFC 6376 section 5.4.2); a name with no instance left adds nothing."""
    used: dict[str, int] = {}
    out = bytearray()
    for name in names:
        name = name.strip().lower()
        instances = [raw for n, raw in fields if n == name]
        taken = used.get(name, 0)
        if taken < len(instances):
            out += relaxed_header(instances[len(instances) - 1 - taken]) + b"\r\n"
        used[name] = taken + 1
    return bytes(out)


def _signed(fields: Sequence[tuple[str, bytes]]) -> tuple[list[str], bytes]:
    names = header_names(fields)
    return names, _selected(fields, names)


def _sign(key: PrivateKey, data: bytes) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(hashlib.sha256(data).digest())


def _folded(value: str) -> str:
    return "\r\n\t ".join(value[i:i + FOLD] for i in range(0, len(value), FOLD))


def signature(signed: tuple[list[str], bytes], body_hash: bytes, key: SigningKey, now: float) -> bytes:
    """One DKIM-Signature field (with its CRLF); ``signed`` is the message's ``header_names``
    and those fields in relaxed form (``_signed``: the same for every key of a message)."""
    names, selected = signed
    h = ":".join(names)
    if len(h) > FOLD:
        h = "\r\n\t:".join(":".join(names[i:i + 6]) for i in range(0, len(names), 6))
    bh = base64.b64encode(body_hash).decode("ascii")
    text = (f"DKIM-Signature: v=1; a={key.algorithm}; c=relaxed/relaxed; d={key.domain};\r\n"
            f"\ts={key.selector}; t={int(now)};\r\n\th={h};\r\n\tbh={bh};\r\n\tb=")
    data = selected + relaxed_header(text.encode("ascii"))
    b = base64.b64encode(_sign(key.private, data)).decode("ascii")
    return (text + _folded(b) + "\r\n").encode("ascii")


def verifies(raw: bytes, fields: Sequence[tuple[str, bytes]], body_hash: bytes, key: SigningKey) -> bool:
    """Whether ``raw`` (a DKIM-Signature field of the message) is a valid signature by ``key``
    over this header and a body of ``body_hash`` (relaxed/relaxed, no ``l=``)."""
    value = raw.partition(b":")[2]
    t = tags(value.decode("ascii", "replace"))
    if (t.get("v") != "1" or t.get("a") != key.algorithm or t.get("d", "").lower() != key.domain
            or t.get("s", "").lower() != key.selector or t.get("c") != "relaxed/relaxed" or "l" in t
            or t.get("bh") != base64.b64encode(body_hash).decode("ascii")):
        return False
    try:
        b = base64.b64decode(t.get("b", ""), validate=True)
    except ValueError:
        return False
    unsigned = raw.partition(b":")[0] + b":" + _B_TAG.sub(rb"\1\2", value)
    data = _selected(fields, t.get("h", "").split(":")) + relaxed_header(unsigned)
    public = key.private.public_key()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(b, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(b, hashlib.sha256(data).digest())
        else:
            return False
    except InvalidSignature:
        return False
    return True


def sign(header_block: bytes, body_hash: bytes, keys: Sequence[SigningKey], now: float) -> bytes:
    """The DKIM-Signature fields to put on top of a message with this header block (all of
    it, as stored) and body hash: one per key, but none where the message already carries
    a valid signature by that key."""
    fields = header_fields(header_block)
    present = [raw for name, raw in fields if name == "dkim-signature"]
    signed = _signed(fields)
    out = bytearray()
    for key in keys:
        if not any(verifies(raw, fields, body_hash, key) for raw in present):
            out += signature(signed, body_hash, key, now)
    return bytes(out)
