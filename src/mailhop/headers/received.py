"""Read one ``Received:`` header value the way real servers write it.

Owns turning a single unfolded Received value into a :class:`Received` record: the
RFC 5321 section 4.4 clauses (``from``, ``by``, ``via``, ``with``, ``id``, ``for``),
the date after the last ``;``, and what Exchange, Postfix, Exim, sendmail, Gmail and
mailhop put into comments (client IP, HELO name, TLS version and cipher).

Fails soft: it never raises.  Whatever cannot be read stays ``None`` and a note in
``Received.notes`` says why; the analyzer turns notes into warnings.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import ipaddress
import re
from dataclasses import dataclass, field

# Exim writes "tls <cipher>" as a clause of its own after "with".
_KEYWORDS = frozenset({"from", "by", "via", "with", "id", "for", "tls"})

# RFC 3848 (and RFC 6531's UTF8 variants): an S after the SMTP/LMTP word means TLS.
_TLS_PROTOCOL = re.compile(r"^(?:UTF8)?(?:E?SMTP|LMTP)SA?$|^HTTPS$")
# Postfix and mailhop: "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) ...)".
_USING = re.compile(r"\busing\s+(?P<v>(?:TLS|SSL)[^\s()]*)(?:\s+with\s+cipher\s+(?P<c>[^\s()]+))?", re.I)
# Exchange, sendmail and Gmail: "version=TLS1_2, cipher=..." or "version=TLSv1.3 cipher=...".
_VERSION = re.compile(r"\bversion=(?P<v>(?:TLS|SSL)[^\s,;()]*)", re.I)
_CIPHER = re.compile(r"\bcipher=(?P<c>[^\s,;()]+)", re.I)
# Exim: "(TLS1.3)" or, before 4.93, "(TLS1.2:ECDHE_RSA_AES_256_GCM_SHA384:256)".
_EXIM_TLS = re.compile(r"^\s*(?P<v>TLS\s?v?1[._]\d)(?::(?P<c>[^:\s]+))?(?::\d+)?\s*$", re.I)
_GOOGLE_TLS = "Google Transport Security"
_TLS_VERSION = re.compile(r"^(TLS|SSL)\s*v?(\d)(?:[._](\d))?$", re.I)

_HELO = re.compile(r"\bhelo[=\s]+([^\s()\[\]]+)", re.I)
_IP_SPLIT = re.compile(r"[\s\[\]()<>,;=]+")
_ZONE_TOKEN = re.compile(r"(?:[+-]\d{4}|\b(?:UT|UTC|GMT|[ECMP][SD]T|Z))\s*$", re.I)
# Used only when a value has no ";": an RFC 5322 date anywhere in it (seconds optional).
_LOOSE_DATE = re.compile(
    r"(?:[A-Za-z]{3},\s*)?\d{1,2}\s+[A-Za-z]{3}\s+\d{2,4}\s+\d{1,2}:\d{2}(?::\d{2})?"
    r"(?:\s*(?:[+-]\d{4}|[A-Za-z]{1,5}))?"
)


@dataclass(frozen=True, slots=True)
class Received:
    """What one Received: header says; ``None`` where it says nothing readable."""

    raw: str
    from_host: str | None = None
    from_ip: str | None = None
    by_host: str | None = None
    by_ip: str | None = None
    via: str | None = None
    protocol: str | None = None
    tls: bool = False
    tls_detail: str | None = None
    id: str | None = None
    recipient: str | None = None
    timestamp: dt.datetime | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def has_route(self) -> bool:
        """True when a ``from`` or ``by`` clause was found: the header names at least one server."""
        return any(v is not None for v in (self.from_host, self.from_ip, self.by_host, self.by_ip))


def parse(value: str) -> Received:
    """Read one unfolded Received value (without the ``Received:`` name)."""
    notes: list[str] = []
    text = " ".join(value.split())
    clauses_text, date_text = _split_date(text)
    tokens, balanced = _tokens(clauses_text)
    if not balanced:
        notes.append("unbalanced parentheses; the rest was read as a comment")
    words, comments = _clauses(tokens)
    if words.get(""):
        notes.append(f"text before the first clause ignored: {' '.join(words[''])!r}")

    from_host, from_ip = _endpoint(words.get("from"), comments.get("from", []), helo_fallback=True)
    by_host, by_ip = _endpoint(words.get("by"), comments.get("by", []), helo_fallback=False)
    protocol = _protocol(words.get("with"))
    all_comments = [c for cs in comments.values() for c in cs]
    tls, tls_detail = _tls(protocol, all_comments, words.get("tls"))

    if date_text is None:
        timestamp = None
        loose = _LOOSE_DATE.search(text)
        if loose:
            timestamp, date_note = parse_date(loose.group(0))
            notes.append("no ';' before the date")
            if date_note:
                notes.append(date_note)
        else:
            notes.append("no date")
    else:
        timestamp, date_note = parse_date(date_text)
        if date_note:
            notes.append(date_note)

    if "from" not in words and "by" not in words:
        notes.append("neither a 'from' nor a 'by' clause")
    return Received(
        raw=value, from_host=from_host, from_ip=from_ip, by_host=by_host, by_ip=by_ip,
        via=" ".join(words.get("via", [])) or None,
        protocol=protocol, tls=tls, tls_detail=tls_detail,
        id=_first(words.get("id")), recipient=_address(_first(words.get("for"))),
        timestamp=timestamp, notes=tuple(notes),
    )


def parse_date(text: str) -> tuple[dt.datetime | None, str | None]:
    """(timezone-aware datetime or None, a note when something was assumed or unreadable).

    Comments such as ``(PDT)`` are dropped and missing seconds are accepted (RFC 5322
    makes them optional).  A date without a zone, or with ``-0000``, is read as UTC.
    """
    cleaned = " ".join(re.sub(r"\([^()]*\)", " ", text).split())
    if not cleaned:
        return None, "no date"
    try:
        when = email.utils.parsedate_to_datetime(cleaned)
    except (TypeError, ValueError, IndexError, OverflowError):
        try:  # some gateways stamp ISO 8601
            when = dt.datetime.fromisoformat(cleaned)
        except ValueError:
            return None, f"unreadable date {cleaned!r}"
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
        if not _ZONE_TOKEN.search(cleaned):
            return when, f"no time zone in {cleaned!r}; read as UTC"
    return when, None


def _split_date(text: str) -> tuple[str, str | None]:
    """(clauses, date): split at the last ';' outside comments (RFC 5321's "; date-time")."""
    depth = 0
    cut = -1
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif ch == ";" and depth == 0:
            cut = i
    if cut < 0:
        cut = text.rfind(";")  # a comment left open swallowed it; the last ';' is still the best guess
    if cut < 0:
        return text, None
    return text[:cut], text[cut + 1:]


def _tokens(text: str) -> tuple[list[tuple[bool, str]], bool]:
    """[(is_comment, text)]; comments nest (Postfix's TLS comment holds "(256/256 bits)")."""
    out: list[tuple[bool, str]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "(":
            depth, j = 0, i
            while j < n:
                if text[j] == "\\":
                    j += 1
                elif text[j] == "(":
                    depth += 1
                elif text[j] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= n:
                out.append((True, text[i + 1:]))
                return out, False
            out.append((True, text[i + 1:j]))
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] != "(":
                j += 1
            out.append((False, text[i:j]))
            i = j
    return out, True


def _clauses(tokens: list[tuple[bool, str]]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Words and comments per clause keyword; "" holds what came before the first keyword."""
    words: dict[str, list[str]] = {}
    comments: dict[str, list[str]] = {}
    current = ""
    for is_comment, token in tokens:
        if is_comment:
            comments.setdefault(current, []).append(token)
            continue
        key = token.lower()
        # A keyword seen twice is more likely a word (a host called "via"?) than a second clause.
        if key in _KEYWORDS and key not in words:
            current = key
            words[key] = []
            continue
        words.setdefault(current, []).append(token)
    return words, comments


def _endpoint(words: list[str] | None, comments: list[str], helo_fallback: bool) -> tuple[str | None, str | None]:
    """(host, ip) of a from or by clause: the clause's word, the first IP in its comments."""
    host: str | None = None
    ip: str | None = None
    if words:
        word = words[0]
        ip = _ip(word)
        if ip is None and word.lower() != "unknown":
            host = word
    for comment in comments:
        if ip is None:
            ip = next((found for t in _IP_SPLIT.split(comment) if (found := _ip(t))), None)
        if host is None and helo_fallback:
            # Exim writes "from [192.0.2.1] (helo=client)"; qmail "from unknown (HELO client)".
            m = _HELO.search(comment)
            if m and _ip(m.group(1)) is None:
                host = m.group(1)
    return host, ip


def _ip(token: str) -> str | None:
    """The address in ``token`` (``[192.0.2.1]``, ``IPv6:2001:db8::1``, ``192.0.2.1:25``), else None."""
    t = token.strip("[]")
    if t[:5].lower() == "ipv6:":
        t = t[5:]
    if not t or not (t[0].isdigit() or ":" in t or t[0].lower() in "abcdef"):
        return None
    for candidate in (t, t.rsplit(":", 1)[0] if t.count(":") == 1 else None):
        if candidate:
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                continue
    return None


def _protocol(words: list[str] | None) -> str | None:
    """The ``with`` value: one word uppercased (Exim writes "esmtpsa"), several as written."""
    if not words:
        return None
    if len(words) == 1:
        return words[0].upper()
    return " ".join(words)


def _tls(protocol: str | None, comments: list[str], exim_tls: list[str] | None) -> tuple[bool, str | None]:
    """(TLS was used, "version cipher" or the label the server wrote; None when it wrote none)."""
    tls = bool(protocol and _TLS_PROTOCOL.match(protocol))
    version: str | None = None
    cipher: str | None = None
    label: str | None = None
    for comment in comments:
        if m := _USING.search(comment):
            tls, version, cipher = True, version or m.group("v"), cipher or m.group("c")
        elif m := _VERSION.search(comment):
            tls, version = True, version or m.group("v")
            if c := _CIPHER.search(comment):
                cipher = cipher or c.group("c")
        elif m := _EXIM_TLS.match(comment):
            tls, version, cipher = True, version or m.group("v"), cipher or m.group("c")
        elif _GOOGLE_TLS.lower() in comment.lower():
            tls, label = True, _GOOGLE_TLS
    if exim_tls:
        tls, cipher = True, cipher or exim_tls[0]
    parts = [p for p in (_tls_version(version) if version else None, cipher) if p]
    return tls, " ".join(parts) or label


def _tls_version(text: str) -> str:
    """TLS1_2, TLS1.2 and TLSv1.2 all become TLSv1.2, so hops compare at a glance."""
    m = _TLS_VERSION.match(text.strip())
    if not m:
        return text
    name, major, minor = m.groups()
    return f"{name.upper()}v{major}" + (f".{minor}" if minor else "")


def _first(words: list[str] | None) -> str | None:
    return words[0] if words else None


def _address(text: str | None) -> str | None:
    if text is None:
        return None
    return text.strip("<>") or None
