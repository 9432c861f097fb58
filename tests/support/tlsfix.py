"""TLS test fixtures: a private PKI written to PEM files, and a recording SMTP receiver.

``Pki`` holds a trusted CA (its certificate in ``ca_file``, for ``[tls] ca_file``) and
a second, untrusted ("rogue") CA; ``leaf`` issues a certificate and key as PEM files,
expired or from the rogue CA when asked.  ``Receiver`` is an aiosmtpd server in its
own thread (STARTTLS, SMTPS or clear text; AUTH PLAIN/LOGIN/XOAUTH2 as configured)
that records, per message, whether TLS carried it, the TLS version, the subject of
the client certificate presented (if any) and the AUTH login; and every AUTH command
and credential check it saw.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import email
import email.message
import email.policy
import re
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, AuthResult, LoginPassword
from aiosmtpd.smtp import SMTP as AioSMTP
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from tests.support.net import free_port


def exchange_dn(name: x509.Name) -> str:
    """A distinguished name as Exchange shows it: ``CN=..., OU=..., O=...``."""
    return ", ".join(rdn.rfc4514_string() for rdn in reversed(name.rdns))


@dataclass(frozen=True)
class Leaf:
    cert_file: Path
    key_file: Path

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_file.read_bytes())

    @property
    def exchange_name(self) -> str:
        """The ``<I>issuer<S>subject`` form of TlsCertificateName for this certificate."""
        cert = self.certificate
        return f"<I>{exchange_dn(cert.issuer)}<S>{exchange_dn(cert.subject)}"


class Pki:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.ca = trustme.CA(organization_name="Contoso Test CA")
        self.rogue = trustme.CA(organization_name="Rogue Test CA")
        self.ca_file = root / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))

    def leaf(self, name: str, *identities: str, ca: trustme.CA | None = None, expired: bool = False) -> Leaf:
        kwargs: dict[str, Any] = {}
        if expired:
            now = dt.datetime.now(dt.UTC)
            kwargs = {"not_before": now - dt.timedelta(days=60), "not_after": now - dt.timedelta(days=30)}
        cert = (ca or self.ca).issue_cert(*identities, common_name=identities[0], **kwargs)
        cert_file, key_file = self.root / f"{name}.pem", self.root / f"{name}.key"
        cert_file.write_bytes(b"".join(c.bytes() for c in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(str(key_file))
        return Leaf(cert_file, key_file)

    def crl(self, *revoked: Leaf) -> Path:
        """A PEM revocation list of the trusted CA, listing ``revoked``."""
        issuer = x509.load_pem_x509_certificate(self.ca.cert_pem.bytes())
        key = serialization.load_pem_private_key(self.ca.private_key_pem.bytes(), password=None)
        now = dt.datetime.now(dt.UTC)
        builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject)
                   .last_update(now - dt.timedelta(days=1)).next_update(now + dt.timedelta(days=30)))
        for leaf in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(leaf.certificate.serial_number)
                .revocation_date(now - dt.timedelta(hours=1)).build())
        crl = builder.sign(key, hashes.SHA256())  # type: ignore[arg-type]
        path = self.root / "ca.crl.pem"
        path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        return path

    def server_context(self, leaf: Leaf | None, *, ask_client_cert: bool = False) -> ssl.SSLContext:
        """A server context with ``leaf`` (None: no certificate, so every handshake fails)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if leaf is not None:
            ctx.load_cert_chain(str(leaf.cert_file), str(leaf.key_file))
        if ask_client_cert:
            ctx.verify_mode = ssl.CERT_OPTIONAL
            ctx.load_verify_locations(cafile=str(self.ca_file))
        return ctx


@dataclass
class Arrival:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls_version: str | None
    tls_cipher: str | None
    peer_subject: dict[str, str] | None   # the client certificate's subject, if one was verified
    auth_login: str | None
    requiretls: bool = False              # MAIL FROM carried REQUIRETLS (RFC 8689)
    mail_dsn: str = ""                    # RET and ENVID as MAIL FROM carried them
    rcpt_dsn: list[str] = field(default_factory=list)  # NOTIFY and ORCPT of each accepted RCPT

    @property
    def tls(self) -> bool:
        return self.tls_version is not None

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[return-value]


@dataclass(frozen=True)
class AuthCheck:
    mechanism: str
    login: str
    secret: str
    ok: bool


@dataclass
class RecordingHandler:
    users: dict[str, str] = field(default_factory=dict)     # login -> password (PLAIN, LOGIN)
    tokens: dict[str, str] = field(default_factory=dict)    # login -> access token (XOAUTH2)
    arrivals: list[Arrival] = field(default_factory=list)
    auth_commands: list[str] = field(default_factory=list)  # every AUTH command's mechanism
    checks: list[AuthCheck] = field(default_factory=list)
    helos: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    requiretls: bool = False  # offer REQUIRETLS inside TLS
    dsn: bool = False         # offer DSN (RFC 3461)
    refuse: tuple[str, ...] = ()  # recipients whose local part starts so get 550 5.1.1

    async def handle_EHLO(self, server: AioSMTP, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        with self.lock:
            self.helos.append(hostname)
        if self.requiretls and session.ssl is not None:
            responses.insert(1, "250-REQUIRETLS")
        if self.dsn:
            responses.insert(1, "250-DSN")
        return responses

    async def handle_RCPT(self, server: AioSMTP, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address.split("@")[0].startswith(self.refuse) and self.refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_AUTH(self, server: AioSMTP, session: Any, envelope: Any, args: list[str]) -> Any:
        with self.lock:
            self.auth_commands.append(args[0].upper() if args else "")
        return MISSING  # go on with the mechanism

    def authenticate(self, server: AioSMTP, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        ok = self.users.get(login) == password
        with self.lock:
            self.checks.append(AuthCheck(mechanism, login, password, ok))
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    async def auth_XOAUTH2(self, server: AioSMTP, args: list[str]) -> AuthResult:
        if len(args) == 2:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except binascii.Error:
                return AuthResult(success=False)
        else:
            answer = await server.challenge_auth("")
            if answer is MISSING:
                return AuthResult(success=False, handled=True)
            blob = answer  # type: ignore[assignment]
        fields = dict(p.split("=", 1) for p in blob.decode("utf-8", "replace").split("\x01") if "=" in p)
        login = fields.get("user", "")
        token = fields.get("auth", "").removeprefix("Bearer ")
        ok = bool(login) and self.tokens.get(login) == token
        with self.lock:
            self.checks.append(AuthCheck("XOAUTH2", login, token, ok))
        data = LoginPassword(login.encode(), token.encode())
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    async def handle_DATA(self, server: AioSMTP, session: Any, envelope: Any) -> str:
        obj = server.transport.get_extra_info("ssl_object") if server.transport is not None else None
        version = cipher = None
        subject = None
        if obj is not None:
            version = obj.version()
            info = obj.cipher()
            cipher = info[0] if info else None
            peer = obj.getpeercert()
            if peer:
                subject = {key: value for rdn in peer.get("subject", ()) for key, value in rdn}
        auth_data = getattr(session, "auth_data", None)
        login = auth_data.login.decode("utf-8", "replace") if isinstance(auth_data, LoginPassword) else None
        sender = "" if envelope.mail_from in ("<>", None) else envelope.mail_from
        with self.lock:
            self.arrivals.append(Arrival(sender, list(envelope.rcpt_tos), envelope.original_content or envelope.content,
                                         version, cipher, subject, login, getattr(envelope, "requiretls", False),
                                         getattr(envelope, "mail_dsn", ""), list(getattr(envelope, "rcpt_dsn", []))))
        return "250 2.0.0 OK captured"


ALL_MECHANISMS = ("PLAIN", "LOGIN", "XOAUTH2")


class _RequireTlsSMTP(AioSMTP):
    """aiosmtpd refuses MAIL and RCPT parameters it does not know: REQUIRETLS, and the DSN
    parameters (RET, ENVID, NOTIFY, ORCPT), are taken off (and noted) when this next hop
    offers the extension."""

    async def smtp_MAIL(self, arg: str) -> None:
        handler = self.event_handler
        found = bool(arg) and handler.requiretls and self.session.ssl is not None and \
            re.search(r"\sREQUIRETLS(?=\s|$)", arg, re.I) is not None
        if found:
            arg = re.sub(r"\s+REQUIRETLS(?=\s|$)", "", arg, flags=re.I)
        dsn = ""
        if arg and handler.dsn:
            dsn = " ".join(re.findall(r"(?<=\s)(?:RET|ENVID)=\S+", arg, re.I))
            arg = re.sub(r"\s+(?:RET|ENVID)=\S+", "", arg, flags=re.I)
        await super().smtp_MAIL(arg)
        if found:
            self.envelope.requiretls = True  # type: ignore[attr-defined]
        self.envelope.mail_dsn = dsn  # type: ignore[attr-defined]

    async def smtp_RCPT(self, arg: str) -> None:
        dsn = ""
        if arg and self.event_handler.dsn:
            dsn = " ".join(re.findall(r"(?<=\s)(?:NOTIFY|ORCPT)=\S+", arg, re.I))
            arg = re.sub(r"\s+(?:NOTIFY|ORCPT)=\S+", "", arg, flags=re.I)
        before = len(self.envelope.rcpt_tos)
        await super().smtp_RCPT(arg)
        if len(self.envelope.rcpt_tos) > before:
            rcpt_dsn = getattr(self.envelope, "rcpt_dsn", [])
            self.envelope.rcpt_dsn = [*rcpt_dsn, dsn]  # type: ignore[attr-defined]


class _TrackingController(Controller):
    """A Controller that can drop its live connections before it stops (so no TLS
    transport is left unclosed when its loop ends)."""

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.sessions: list[AioSMTP] = []

    def factory(self) -> AioSMTP:
        smtp = _RequireTlsSMTP(self.handler, **self.SMTP_kwargs)
        self.sessions.append(smtp)
        return smtp

    async def _drop_connections(self) -> None:
        for smtp in self.sessions:
            for transport in (smtp.transport, smtp._original_transport):
                if transport is not None and not transport.is_closing():
                    transport.abort()
        for _ in range(5):
            await asyncio.sleep(0.01)

    def stop(self, *args: Any, **kwargs: Any) -> None:
        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(self._drop_connections(), self.loop).result(5)
        super().stop(*args, **kwargs)


class Receiver:
    """An aiosmtpd next hop: ``starttls`` offers STARTTLS with that context, ``smtps``
    speaks TLS from the first byte; ``mechanisms`` are the AUTH mechanisms offered
    (after STARTTLS unless ``auth_require_tls`` is false)."""

    def __init__(self, *, starttls: ssl.SSLContext | None = None, smtps: ssl.SSLContext | None = None,
                 users: dict[str, str] | None = None, tokens: dict[str, str] | None = None,
                 mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN"), auth_require_tls: bool = True,
                 host: str = "127.0.0.1", port: int | None = None, requiretls: bool = False, dsn: bool = False,
                 refuse: tuple[str, ...] = ()) -> None:
        self.handler = RecordingHandler(users=dict(users or {}), tokens=dict(tokens or {}), requiretls=requiretls,
                                        dsn=dsn, refuse=refuse)
        self.host = host
        self.port = port or free_port(host)
        kwargs: dict[str, Any] = {
            "hostname": host, "port": self.port, "decode_data": False, "data_size_limit": 10 * 1024 * 1024,
            "authenticator": self.handler.authenticate, "auth_require_tls": auth_require_tls,
            "auth_exclude_mechanism": [m for m in ALL_MECHANISMS if m not in mechanisms],
        }
        if starttls is not None:
            kwargs["tls_context"] = starttls
        if smtps is not None:
            kwargs["ssl_context"] = smtps
        self.controller = _TrackingController(self.handler, **kwargs)

    @property
    def smart_host(self) -> str:
        return f"[{self.host}]:{self.port}"

    @property
    def arrivals(self) -> list[Arrival]:
        with self.handler.lock:
            return list(self.handler.arrivals)

    @property
    def auth_commands(self) -> list[str]:
        with self.handler.lock:
            return list(self.handler.auth_commands)

    @property
    def checks(self) -> list[AuthCheck]:
        with self.handler.lock:
            return list(self.handler.checks)

    @property
    def helos(self) -> list[str]:
        with self.handler.lock:
            return list(self.handler.helos)

    def start(self) -> Receiver:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
