"""mailhop.units: durations and sizes as administrators (and Exchange) write them."""

from __future__ import annotations

import re

import pytest

from mailhop.units import format_size, format_timespan, parse_duration, parse_size

MB = 1024 * 1024


# --- parse_duration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        # suffixed forms
        ("30s", 30.0),
        ("5m", 300.0),
        ("4h", 14_400.0),
        ("2d", 172_800.0),
        ("1w", 604_800.0),
        ("500ms", 0.5),
        ("1.5h", 5_400.0),
        # compound forms
        ("1h30m", 5_400.0),
        ("1h 30m", 5_400.0),
        ("1d2h3m4s", 93_784.0),
        ("2m30s", 150.0),
        # case and surrounding blanks
        ("30S", 30.0),
        ("1H30M", 5_400.0),
        ("  5m  ", 300.0),
        ("30 s", 30.0),
        # bare numbers are seconds
        ("90", 90.0),
        ("0", 0.0),
        ("1.5", 1.5),
        # Exchange TimeSpan: hh:mm:ss and d.hh:mm:ss
        ("00:10:00", 600.0),
        ("00:00:01", 1.0),
        ("0:00:01", 1.0),
        ("23:59:59", 86_399.0),
        ("01:30:00", 5_400.0),
        ("1.00:00:00", 86_400.0),
        ("2.00:00:00", 172_800.0),
        ("1.02:03:04", 93_784.0),
        ("90.00:00:00", 7_776_000.0),
        ("00:00:00.5", 0.5),
    ],
)
def test_parse_duration_accepts_documented_forms(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(0, 0.0), (45, 45.0), (2.5, 2.5), (86_400, 86_400.0)],
)
def test_parse_duration_takes_numbers_as_seconds(value: float, seconds: float) -> None:
    result = parse_duration(value)
    assert result == seconds
    assert isinstance(result, float)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "abc",
        "5x",
        "m5",
        "h",
        "-5",
        "-5s",
        "5m abc",
        "abc 5m",
        "5m5",
        "1h30",
        "5m-3s",
        "1..5s",
        "10:00",  # Exchange needs hh:mm:ss
        "1:2:3",
        "1.00:00",
        "24:00:00",  # hours above 23 must be written as days
        "00:60:00",
        "00:00:60",
    ],
)
def test_parse_duration_rejects_invalid_text(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_parse_duration_error_names_the_bad_value() -> None:
    with pytest.raises(ValueError, match="soonish"):
        parse_duration("soonish")


@pytest.mark.parametrize("value", [-1, -0.5, True, False])
def test_parse_duration_rejects_negative_numbers_and_booleans(value: float) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


# --- format_timespan ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "00:00:00"),
        (1, "00:00:01"),
        (59, "00:00:59"),
        (60, "00:01:00"),
        (600, "00:10:00"),
        (3_600, "01:00:00"),
        (86_399, "23:59:59"),
        (86_400, "1.00:00:00"),
        (90_061, "1.01:01:01"),
        (93_784, "1.02:03:04"),
        (172_800, "2.00:00:00"),
        (7_776_000, "90.00:00:00"),
    ],
)
def test_format_timespan_prints_exchange_timespans(seconds: float, text: str) -> None:
    assert format_timespan(seconds) == text


@pytest.mark.parametrize("seconds", [1, 600, 14_400, 86_400, 93_784, 172_800])
def test_format_timespan_parses_back(seconds: int) -> None:
    assert parse_duration(format_timespan(seconds)) == seconds


# --- parse_size ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("35MB", 35 * MB),
        ("35 MB", 36_700_160),
        ("35mb", 35 * MB),
        ("35 Mb", 35 * MB),
        ("512KB", 524_288),
        ("1KB", 1024),
        ("0.5KB", 512),
        ("1.5MB", 1_572_864),
        ("1GB", 1_073_741_824),
        ("2 GB", 2_147_483_648),
        ("1TB", 1_099_511_627_776),
        ("100B", 100),
        ("100 B", 100),
        ("10485760", 10_485_760),
        ("10,485,760", 10_485_760),
        ("0", 0),
        # Exchange's own printed form: the byte count in parentheses wins
        ("35 MB (36,700,160 bytes)", 36_700_160),
        ("10 MB (10,485,760 bytes)", 10_485_760),
        ("35 MB (36700160 bytes)", 36_700_160),
        ("1.254 GB (1,346,514,071 bytes)", 1_346_514_071),
        ("  25 MB  ", 25 * MB),
    ],
)
def test_parse_size_accepts_documented_forms(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["unlimited", "Unlimited", "UNLIMITED", "  unlimited  "])
def test_parse_size_unlimited_is_none(text: str) -> None:
    assert parse_size(text) is None


def test_parse_size_none_is_unlimited() -> None:
    assert parse_size(None) is None


@pytest.mark.parametrize(("value", "size"), [(0, 0), (1, 1), (36_700_160, 36_700_160)])
def test_parse_size_takes_ints_as_bytes(value: int, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize(
    "value",
    ["", "abc", "MB", "35 XB", "35 MiB", "35 M", "35MB extra", "1.5.5MB", "-1", "-1MB", -1, True],
)
def test_parse_size_rejects_invalid_input(value: str | int) -> None:
    with pytest.raises(ValueError):
        parse_size(value)


def test_parse_size_error_names_the_bad_value() -> None:
    with pytest.raises(ValueError, match="35 parsecs"):
        parse_size("35 parsecs")


# --- format_size --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (None, "Unlimited"),
        (0, "0 B (0 bytes)"),
        (1, "1 B (1 bytes)"),
        (1023, "1023 B (1,023 bytes)"),
        (1024, "1 KB (1,024 bytes)"),
        (1536, "1.5 KB (1,536 bytes)"),
        (524_288, "512 KB (524,288 bytes)"),
        (10_485_760, "10 MB (10,485,760 bytes)"),
        (36_700_160, "35 MB (36,700,160 bytes)"),
        (1_073_741_824, "1 GB (1,073,741,824 bytes)"),
        (1_099_511_627_776, "1 TB (1,099,511,627,776 bytes)"),
    ],
)
def test_format_size_prints_exchange_byte_quantified_sizes(size: int | None, text: str) -> None:
    assert format_size(size) == text


@pytest.mark.parametrize(
    "size",
    [
        1_048_063,  # 1023.5 KB
        1_048_152,  # 1023.59 KB
        1000 * MB + 1,  # just above 1000 MB
        1_073_741_823,  # one byte short of 1 GB
    ],
)
def test_format_size_never_uses_scientific_notation(size: int) -> None:
    text = format_size(size)
    assert "e+" not in text
    assert re.fullmatch(r"\d+(\.\d+)? (B|KB|MB|GB|TB) \([\d,]+ bytes\)", text), text
    assert f"({size:,} bytes)" in text


@pytest.mark.parametrize(
    "size", [None, 0, 1, 1023, 1024, 1536, 1_048_063, 36_700_160, 2_147_483_647]
)
def test_format_size_parses_back_exactly(size: int | None) -> None:
    assert parse_size(format_size(size)) == size
