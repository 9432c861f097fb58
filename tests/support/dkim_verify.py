"""Verifiers of DKIM signatures that no one here wrote: OpenDKIM (Debian's) and dkimpy.

``opendkim`` runs OpenDKIM's test mode (``opendkim -t FILE``) with its resolver (libunbound)
forwarding every query to the test's dnsmasq, and reads the verdict of each signature
from the Authentication-Results field it writes (RFC 8601): ``{"selector1": "pass",
"selector1-ed25519": "pass"}``, or ``"fail"`` / ``"fail: <reason>"``.  ``dkimpy`` asks the
same dnsmasq through dnspython and verifies each signature on its own.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import dkim
import dns.resolver

from tests.support.dns import DnsServer

OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"
_RESULT = re.compile(r'dkim=(\w+)(?: reason="([^"]*)")?[^;]*?header\.s=([\w.-]+)')


def opendkim(message: bytes, dns_server: DnsServer) -> dict[str, str]:
    with tempfile.TemporaryDirectory(prefix="mailhop-opendkim-") as folder:
        root = Path(folder)
        (root / "unbound.conf").write_text(
            "server:\n  do-not-query-localhost: no\n  module-config: \"iterator\"\n"
            "  local-zone: \"test.\" nodefault\n"  # unbound answers .test itself otherwise (RFC 6761)
            f"forward-zone:\n  name: \".\"\n  forward-addr: {dns_server.host}@{dns_server.port}\n")
        (root / "opendkim.conf").write_text(
            f"Mode v\nResolverConfiguration {root / 'unbound.conf'}\nSyslog no\nAlwaysAddARHeader yes\n"
            "AuthservID verifier.test\nMaximumSignaturesToVerify 10\n")
        (root / "message.eml").write_bytes(message)
        done = subprocess.run([OPENDKIM, "-x", str(root / "opendkim.conf"), "-t", str(root / "message.eml"), "-vv"],
                              capture_output=True, text=True, timeout=60)
    header = re.sub(r"\([^)]*\)", "", done.stdout.replace("\n\t", " "))  # comments hold semicolons
    if "Authentication-Results" not in header:
        raise AssertionError(f"opendkim gave no verdict (status {done.returncode}):\n{done.stdout}\n{done.stderr}")
    return {selector: result if not reason else f"{result}: {reason}"
            for result, reason, selector in _RESULT.findall(header)}


def dkimpy(message: bytes, dns_server: DnsServer) -> dict[str, bool]:
    """Each signature's selector and whether dkimpy verifies it."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [dns_server.host]
    resolver.port = dns_server.port

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        try:
            answer = resolver.resolve(name.decode(), "TXT")
        except dns.exception.DNSException:
            return None
        return b"".join(b"".join(r.strings) for r in answer)

    signatures = [v for k, v in dkim.DKIM(message).headers if k.lower() == b"dkim-signature"]
    out = {}
    for index, value in enumerate(signatures):
        selector = re.search(rb"\bs=([\w.-]+)", value.replace(b"\r\n", b""))
        try:
            ok = dkim.DKIM(message).verify(idx=index, dnsfunc=lookup)
        except dkim.DKIMException:
            ok = False
        out[selector.group(1).decode() if selector else f"#{index}"] = bool(ok)
    return out
