"""The sendmail command line's rules (``mailhop sendmail``, in ``cli.sendmail``): its options,
the message on standard input, and the envelope and header fields it makes.

Recipients are the arguments (comma-separated lists too; a bare local name gets
``@<[server] fqdn>``) and, with ``-t``, the To, Cc and Bcc fields; ``Bcc:`` never leaves.
Without ``-i`` a line holding only ``.`` ends the message.  ``-f`` sets the envelope sender
(``<>`` the null sender; default ``<user>@<fqdn>``), ``-F`` the full name of the ``From:``
added when the message has none.  ``-odi``, ``-odb``, ``-odq``, ``-oem`` and friends, ``-bm``,
``-B``, ``-N``, ``-R``, ``-V``, ``-X`` and ``-o<letter>`` options are accepted and ignored;
anything else is refused (``Usage``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.utils import formataddr, getaddresses
from typing import BinaryIO

from mailhop.headers import block
from mailhop.receive.local import Prepared
from mailhop.smtp.address import valid_address
from mailhop.smtp.stream import crlf

# Options of sendmail that change nothing here (delivery mode, error mode, body type, DSN, logs).
_IGNORED_FLAGS = {"-bm", "-odi", "-odb", "-odq", "-odd", "-oem", "-oee", "-oep", "-oeq", "-oew", "-om", "-os",
                  "-U", "-n"}
_IGNORED_PREFIXES = ("-B", "-N", "-R", "-V", "-X", "-L", "-h", "-O")


class Usage(Exception):
    """A usage error (sysexits EX_USAGE)."""


class DataError(Exception):
    """The message or an address cannot be taken (sysexits EX_DATAERR)."""


@dataclass
class Options:
    recipients: list[str] = field(default_factory=list)
    sender: str | None = None
    full_name: str | None = None
    extract: bool = False
    ignore_dots: bool = False
    verbose: bool = False


def parse(argv: list[str]) -> Options:
    o = Options()
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            o.recipients += argv[i:]
            break
        if not arg.startswith("-") or arg == "-":
            o.recipients.append(arg)
        elif arg == "-t":
            o.extract = True
        elif arg in ("-i", "-oi"):
            o.ignore_dots = True
        elif arg == "-v":
            o.verbose = True
        elif arg[:2] in ("-f", "-r", "-F"):  # -f SENDER, -fSENDER (-r: the old name of -f)
            value = arg[2:]
            if not value:
                if i >= len(argv):
                    raise Usage(f"option {arg} needs a value")
                value = argv[i]
                i += 1
            if arg[:2] == "-F":
                o.full_name = value
            else:
                o.sender = value
        elif arg in _IGNORED_FLAGS or arg.startswith(_IGNORED_PREFIXES) or (arg.startswith("-o") and len(arg) == 3):
            if len(arg) == 2 and arg in _IGNORED_PREFIXES:
                i += 1  # its value is the next argument
        else:
            raise Usage(f"unknown option {arg} (mailhop sendmail --help lists those it takes)")
    return o


def read_message(stream: BinaryIO, ignore_dots: bool, limit: int) -> bytes:
    """The message from standard input, CRLF-terminated; without -i, up to a lone '.' line."""
    out = bytearray()
    for line in iter(lambda: stream.readline(65536), b""):
        if not ignore_dots and line.rstrip(b"\r\n") == b"." and (not out or out.endswith(b"\n")):
            break
        out += line
        if len(out) > limit:
            raise DataError(f"the message is larger than {limit} bytes")
    data = crlf(bytes(out))
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


def _addresses(values: list[str], domain: str) -> list[str]:
    """The addresses of header values or arguments (``a@x, B <b@y>``); a bare name gets ``@domain``."""
    out = []
    for value in values:
        parsed = [a for _, a in getaddresses([value]) if a]
        if value.strip(" ,") and not parsed:
            raise ValueError(value.strip())
        for address in parsed:
            if "@" not in address:
                address = f"{address}@{domain}"
            if not valid_address(address):
                raise ValueError(address)
            out.append(address)
    return out


def prepare(o: Options, data: bytes, fqdn: str, user: str) -> Prepared:
    headers, _ = block.split(data)
    pairs = block.fields(headers)
    sender = o.sender if o.sender is not None else f"{user}@{fqdn}"
    sender = "" if sender.strip() in ("<>", "") else sender.strip().strip("<>")
    if sender and "@" not in sender:
        sender = f"{sender}@{fqdn}"
    try:
        if sender and not valid_address(sender):
            raise ValueError(sender)
        recipients = _addresses(o.recipients, fqdn)
        if o.extract:
            recipients += _addresses([v for k, v in pairs if k.lower() in ("to", "cc", "bcc")], fqdn)
    except ValueError as exc:
        raise DataError(f"'{exc}' is not an e-mail address") from None
    if not recipients:
        raise Usage("no recipients: name them as arguments, or use -t with To, Cc or Bcc fields")
    data = block.drop_fields(data, (b"bcc:",))
    if block.first(pairs, "From") is None:
        name = o.full_name
        line = formataddr((name, sender or f"{user}@{fqdn}")) if name else (sender or f"{user}@{fqdn}")
        data = f"From: {line}\r\n".encode() + data
    return Prepared(sender, list(dict.fromkeys(recipients)), data)
