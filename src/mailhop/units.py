"""Durations and sizes as administrators write them.

Durations: ``30s``, ``5m``, ``4h``, ``2d``, ``1h30m``, a bare number of seconds, or
Exchange's TimeSpan form ``[d.]hh:mm:ss`` (``00:10:00``, ``2.00:00:00``).
Sizes: ``36MB``, ``35 MB``, ``512KB``, ``10485760`` (bytes), ``unlimited``, or the
way Exchange prints them, ``35 MB (36,700,160 bytes)``.  Units are binary as in
Exchange (1 MB = 1,048,576 bytes).

Invalid input raises ``ValueError`` with a message naming the bad value.
"""

from __future__ import annotations

import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_DURATION_FACTORS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?$")

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB)?$", re.IGNORECASE)
_SIZE_EXCHANGE = re.compile(r"\(([\d,]+)\s*bytes\)", re.IGNORECASE)
_SIZE_FACTORS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def parse_duration(value: str | int | float) -> float:
    """Return the duration in seconds."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"invalid duration {value!r}: negative")
        return float(value)
    text = value.strip()
    if not text:
        raise ValueError("invalid duration '': empty")
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    m = _TIMESPAN.match(text)
    if m:
        days, hours, minutes, seconds, frac = m.groups()
        if int(minutes) > 59 or int(seconds) > 59 or int(hours) > 23:
            raise ValueError(f"invalid duration {value!r}")
        whole = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds)
        return whole + (float("0." + frac) if frac else 0.0)
    pos = 0
    total: float = 0.0
    for part in _DURATION_PART.finditer(text):
        if part.start() != pos and text[pos : part.start()].strip():
            break
        total += float(part.group(1)) * _DURATION_FACTORS[part.group(2).lower()]
        pos = part.end()
    if pos == 0 or text[pos:].strip():
        raise ValueError(
            f"invalid duration {value!r}: use 30s, 5m, 4h, 2d or Exchange's d.hh:mm:ss"
        )
    return total


def format_timespan(seconds: float) -> str:
    """Format seconds the way Exchange prints a TimeSpan: ``1.02:03:04``."""
    whole = int(seconds)
    fraction = round(seconds - whole, 7)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    core = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    if fraction:  # Exchange prints fractions with seven digits: 00:00:01.5000000
        core += f"{fraction:.7f}"[1:]
    return f"{days}.{core}" if days else core


def parse_size(value: str | int | None) -> int | None:
    """Return the size in bytes, or None for unlimited."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"invalid size {value!r}: negative")
        return value
    text = value.strip()
    if text.lower() == "unlimited":
        return None
    exch = _SIZE_EXCHANGE.search(text)
    if exch:
        return int(exch.group(1).replace(",", ""))
    m = _SIZE.match(text.replace(",", ""))
    if not m:
        raise ValueError(f"invalid size {value!r}: use e.g. 35MB, 512KB, 1048576 or unlimited")
    number = float(m.group(1))
    unit = (m.group(2) or "B").upper()
    return int(number * _SIZE_FACTORS[unit])


def format_size(size: int | None) -> str:
    """Format a size the way Exchange prints a ByteQuantifiedSize."""
    if size is None:
        return "Unlimited"
    for unit in ("TB", "GB", "MB", "KB"):
        factor = _SIZE_FACTORS[unit]
        if size >= factor:
            shown = f"{size / factor:.2f}".rstrip("0").rstrip(".")
            return f"{shown} {unit} ({size:,} bytes)"
    return f"{size} B ({size:,} bytes)"
