"""The message header analyzer: pasted headers in, the path of the message out.

Owns reading a pasted header block (a whole message or only its headers, LF or CRLF,
indented, folded, or Outlook's "Internet headers" box), ordering its Received: hops
from the first (the bottom-most header) to the last, the delay at each hop, the total,
and the findings an administrator looks for: clock skew and hops without TLS.

Fails soft on odd input: a Received: header that cannot be read fully becomes a hop
with what could be read plus a warning; no Received: header at all gives an Analysis
without hops and a warning.  Only empty input raises (``ValidationError``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from mailhop.errors import ValidationError
from mailhop.headers import block, received

# Servers stamp whole seconds at different moments of a transaction (Exchange at the
# end of DATA, Postfix at the start), so a second or two backwards is not a clock problem.
SKEW_TOLERANCE = 5.0

NO_TLS = "NoTls"
CLOCK_SKEW = "ClockSkew"
NO_TIME = "NoTime"
UNPARSED = "Unparsed"

# Lenient on purpose: a pasted line whose indentation was lost is a continuation, and
# only a name that starts with a letter (not "10:01:02") begins a new field.
_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9_.-]*)[ \t]*:")

# Addresses that never leave one organization's network.  Written out rather than
# ipaddress's is_private, which also counts the documentation ranges (192.0.2.0/24 ...).
_INTERNAL_NETS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16",
    "::1/128", "fc00::/7", "fe80::/10",
))
# "with" values that are not SMTP on a network: Exchange's store submission, Exim's local delivery.
_LOCAL_PROTOCOLS = frozenset({"MAPI", "LOCAL"})


@dataclass(frozen=True, slots=True)
class Hop:
    """One Received: header in path order, with what the analyzer found about it."""

    number: int
    header: received.Received
    delay: float | None
    flags: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        h = self.header
        return {
            "Hop": self.number,
            "From": h.from_host,
            "FromIp": h.from_ip,
            "By": h.by_host or h.by_ip,
            "ByIp": h.by_ip,
            "With": h.protocol,
            "Via": h.via,
            "Tls": h.tls,
            "TlsDetail": h.tls_detail,
            "Id": h.id,
            "For": h.recipient,
            "Time": h.timestamp.isoformat() if h.timestamp else None,
            "Delay": self.delay,
            "Flags": list(self.flags),
        }


@dataclass(frozen=True, slots=True)
class Analysis:
    hops: tuple[Hop, ...]
    total_delay: float | None
    subject: str | None
    sender: str | None
    to: str | None
    message_id: str | None
    date: str | None
    sent: dt.datetime | None
    warnings: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "Subject": self.subject,
            "From": self.sender,
            "To": self.to,
            "MessageId": self.message_id,
            "Date": self.sent.isoformat() if self.sent else self.date,
            "TotalDelay": self.total_delay,
            "Hops": [hop.to_json() for hop in self.hops],
            "Warnings": list(self.warnings),
        }


def analyze(text: str | bytes) -> Analysis:
    """Analyze pasted message headers; see the module docstring for what is tolerated."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not text.strip():
        raise ValidationError("no message headers to analyze: the input is empty")
    pairs = read_fields(text)
    warnings: list[str] = []

    date = block.first(pairs, "Date")
    sent: dt.datetime | None = None
    if date is not None:
        sent, note = received.parse_date(date)
        if note:
            warnings.append(f"Date: {note}")

    # Each server puts its Received: on top, so the bottom-most one is the first hop.
    stamps = [received.parse(value) for name, value in reversed(pairs) if name.lower() == "received"]
    if not stamps:
        warnings.append("no Received: headers: the message's path cannot be traced"
                        + ("" if pairs else " (no header fields were found)"))

    hops: list[Hop] = []
    previous = sent
    previous_name = "the Date: header"
    for number, stamp in enumerate(stamps, 1):
        flags: list[str] = []
        for note in stamp.notes:
            warnings.append(f"Hop {number}: {note}")
        if not stamp.has_route:
            flags.append(UNPARSED)
        delay: float | None = None
        if stamp.timestamp is None:
            flags.append(NO_TIME)
        else:
            if previous is not None:
                delay = (stamp.timestamp - previous).total_seconds()
                if delay < -SKEW_TOLERANCE:
                    flags.append(CLOCK_SKEW)
                    warnings.append(f"Hop {number}: stamped {-delay:g} s before {previous_name}; "
                                    "the clocks of these servers disagree")
            # A hop without a time is skipped over: the next delay counts from the last known time.
            previous, previous_name = stamp.timestamp, f"hop {number}"
        if stamp.has_route and not stamp.tls and not is_internal(stamp):
            flags.append(NO_TLS)
            warnings.append(f"Hop {number}: no TLS from {_name(stamp.from_host, stamp.from_ip)}"
                            f" to {_name(stamp.by_host, stamp.by_ip)}")
        hops.append(Hop(number, stamp, delay, tuple(flags)))

    times = [h.header.timestamp for h in hops if h.header.timestamp is not None]
    start = sent or (times[0] if times else None)
    total = (times[-1] - start).total_seconds() if times and start else None
    return Analysis(
        hops=tuple(hops), total_delay=total,
        subject=_decoded(block.first(pairs, "Subject")), sender=_decoded(block.first(pairs, "From")),
        to=_decoded(block.first(pairs, "To")), message_id=block.first(pairs, "Message-ID"),
        date=date, sent=sent, warnings=tuple(warnings),
    )


def is_internal(stamp: received.Received) -> bool:
    """True for a hop that does not cross a network between organizations' servers.

    Such hops are not flagged for lacking TLS:

    * no ``from`` clause: a server's own hand-off (Gmail's "Received: by 2002:...
      with SMTP", Postfix's pickup "by mx (Postfix, from userid 1000)");
    * from localhost or a loopback address (content filters such as amavis);
    * from and by the same host;
    * ``with mapi`` or ``with local``: not SMTP on a network at all;
    * ``with Microsoft SMTP Server`` without ``version=`` between internal (RFC 1918,
      loopback, link-local, ULA) addresses: Exchange servers of one organization, which
      authenticate each other; flagging them would flag every on-premises
      organization's normal internal flow.

    Any other hop without TLS is flagged, including plain SMTP between two private
    addresses of other MTAs: mail there crosses a LAN in clear text.
    """
    if stamp.from_host is None and stamp.from_ip is None:
        return True
    if (stamp.from_host or "").lower() in ("localhost", "localhost.localdomain") or _loopback(stamp.from_ip):
        return True
    if stamp.from_host and stamp.by_host and stamp.from_host.lower().rstrip(".") == stamp.by_host.lower().rstrip("."):
        return True
    if stamp.protocol in _LOCAL_PROTOCOLS:
        return True
    if stamp.protocol == "Microsoft SMTP Server" and _internal_ip(stamp.from_ip):
        return stamp.by_ip is None or _internal_ip(stamp.by_ip)
    return False


def read_fields(text: str) -> list[tuple[str, str]]:
    """[(name, unfolded value)] of the header block at the start of ``text``.

    Unlike ``block.fields`` (which reads what the SMTP server stored) this reads what
    people paste: any line ends, a common indentation, a leading mbox "From " line,
    and continuation lines that lost their indentation.  The block ends at the first
    blank line after a field, as in RFC 5322; the body is never read.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    if lines and lines[0].startswith("From ") and not _FIELD.match(lines[0]):
        lines.pop(0)  # mbox separator, as saved by Thunderbird and mutt
    indent = lines[0][: len(lines[0]) - len(lines[0].lstrip(" \t"))] if lines else ""
    out: list[tuple[str, str]] = []
    for line in lines:
        if not line.strip():
            if out:
                break
            continue
        if indent and line.startswith(indent):
            line = line[len(indent):]
        m = _FIELD.match(line)
        if m and line[:1] not in (" ", "\t"):
            out.append((m.group(1), line[m.end():].strip()))
        elif out:
            name, value = out[-1]
            out[-1] = (name, f"{value} {line.strip()}".strip())
    return out


def _decoded(value: str | None) -> str | None:
    return block.decoded(value) if value is not None else None


def _name(host: str | None, ip: str | None) -> str:
    if host and ip:
        return f"{host} [{ip}]"
    return host or ip or "an unnamed server"


def _address(ip: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if ip is None:
        return None
    try:
        return ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return None


def _loopback(ip: str | None) -> bool:
    address = _address(ip)
    return address is not None and address.is_loopback


def _internal_ip(ip: str | None) -> bool:
    address = _address(ip)
    return address is not None and any(address in net for net in _INTERNAL_NETS)
