"""DKIM keys: making them, loading them, and reading a published key record.

RSA keys are made with ``cryptography`` at the config's size (public exponent 65537);
their ``p=`` is the DER SubjectPublicKeyInfo in base64, as OpenDKIM's
``opendkim-genkey`` publishes it.  Ed25519 keys (RFC 8463) publish the raw 32-byte
public key.  Private keys travel as PKCS#8 PEM text and are stored sealed; nothing here
prints or logs them.

``parse_record`` reads a TXT record as RFC 6376 section 3.6.1 defines it; a record that
is not a DKIM key record (or is revoked, ``p=``) yields None.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailhop.errors import ConfigError
from mailhop.model.dkim import ED25519, KEY_TYPE, RSA

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True, slots=True)
class NewKey:
    private_pem: str
    public: str  # the p= value


def public_value(key: PrivateKey) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        der = key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    else:
        der = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(der).decode("ascii")


def new_key(algorithm: str, key_size: int) -> NewKey:
    key: PrivateKey
    if algorithm == RSA:
        key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    elif algorithm == ED25519:
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(algorithm)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode("ascii")
    return NewKey(pem, public_value(key))


def load_private(pem: str, algorithm: str) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"a stored DKIM key ({algorithm}) cannot be read: {exc}") from None
    wanted = rsa.RSAPrivateKey if algorithm == RSA else ed25519.Ed25519PrivateKey
    if not isinstance(key, wanted):
        raise ConfigError(f"a stored DKIM key is not an {algorithm} key")
    return key


def tags(text: str) -> dict[str, str]:
    """A DKIM tag list (``v=DKIM1; k=rsa; p=...``) as a dict; whitespace around and inside
    values removed (RFC 6376 section 3.2: FWS is allowed within base64 values)."""
    out: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            out.setdefault(name.strip(), "".join(value.split()))
    return out


@dataclass(frozen=True, slots=True)
class PublishedKey:
    key_type: str  # "rsa" or "ed25519"
    public: str


def parse_record(text: str) -> PublishedKey | None:
    t = tags(text)
    if t.get("v", "DKIM1") != "DKIM1" or not t.get("p"):
        return None
    return PublishedKey(t.get("k", "rsa").lower(), t["p"])


def matches(published: PublishedKey, algorithm: str, public: str) -> bool:
    return published.key_type == KEY_TYPE[algorithm] and published.public == public
