"""``mailhop headers analyze``: the hop table, delay bars, --json, and unreadable files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailhop.cli import main as cli_main
from mailhop.cli.headers import duration
from mailhop.cli.main import cli
from mailhop.errors import ValidationError
from mailhop.headers.analyzer import analyze
from tests.unit.test_header_analyzer import FIGURE_6, POSTFIX_SKEW


@pytest.fixture
def figure_6(tmp_path: Path) -> Path:
    path = tmp_path / "figure6.eml"
    path.write_text(FIGURE_6, encoding="utf-8")
    return path


def test_table_total_and_bars(figure_6: Path) -> None:
    result = CliRunner().invoke(cli, ["headers", "analyze", str(figure_6)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("Hop "))
    assert lines[header].split() == ["Hop", "Delay", "From", "By", "With", "TLS", "Time"]
    rows = [line.split() for line in lines[header + 2: header + 9]]
    assert [r[0] for r in rows] == ["1", "2", "3", "4", "5", "6", "7"]
    assert rows[2][:5] == ["3", "2s", "EXCH02.contoso.com", "[20.61.12.34]",
                           "DB8EUR05FT010.mail.protection.outlook.com"]
    assert rows[5][-3:] == ["TLSv1.2", "2021-10-04", "01:01:08-07:00"]
    assert rows[0][-3] == "No"  # MAPI: no TLS, but internal, so no warning below
    assert "Total delay: 9s" in lines
    assert "Subject   : Test via the EOP smarthost" in lines
    bars = lines[lines.index("Delays:") + 1:]
    assert bars[0] == "  1 |" + "#" * 20 + " " * 20 + "| 1s"
    assert bars[2] == "  3 |" + "#" * 40 + "| 2s"
    assert bars[3] == "  4 |" + " " * 40 + "| 0s"
    assert "Warnings:" not in result.output


def test_warnings_and_skew_from_stdin() -> None:
    result = CliRunner().invoke(cli, ["headers", "analyze", "-"], input=POSTFIX_SKEW)
    assert result.exit_code == 0, result.output
    assert "Total delay: -2m 14s" in result.output
    assert "  3 |" + " " * 40 + "| -2m 18s (clock skew)" in result.output
    warnings = result.output.split("Warnings:\n", 1)[1].splitlines()
    assert warnings == [
        "  Hop 2: no TLS from app01.internal.example.org [10.20.0.15] to relay.example.org",
        "  Hop 3: stamped 138 s before hop 2; the clocks of these servers disagree",
    ]


def test_no_received_headers() -> None:
    result = CliRunner().invoke(cli, ["headers", "analyze", "-"], input="Subject: x\n")
    assert result.exit_code == 0
    assert "No Received: headers." in result.output
    assert "  no Received: headers: the message's path cannot be traced" in result.output


def test_json(figure_6: Path) -> None:
    result = CliRunner().invoke(cli, ["headers", "analyze", "--json", str(figure_6)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data == analyze(FIGURE_6).to_json()
    assert data["TotalDelay"] == 9.0
    assert [h["Delay"] for h in data["Hops"]] == [1.0, 1.0, 2.0, 0.0, 2.0, 2.0, 1.0]
    assert data["Hops"][0]["From"] == "EXCH01.contoso.com"


def test_missing_file_is_a_validation_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.eml"
    result = CliRunner().invoke(cli, ["headers", "analyze", str(missing)])
    assert result.exit_code == 1
    assert isinstance(result.exception, ValidationError)
    assert str(result.exception) == f"{missing}: no such file"


def test_missing_file_is_one_line_and_exit_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.eml"
    monkeypatch.setattr(sys, "argv", ["mailhop", "headers", "analyze", str(missing)])
    with pytest.raises(SystemExit) as exc:
        cli_main.main()
    assert exc.value.code == 1
    assert capsys.readouterr().err == f"mailhop: {missing}: no such file\n"


def test_empty_input_is_a_validation_error() -> None:
    result = CliRunner().invoke(cli, ["headers", "analyze", "-"], input="")
    assert result.exit_code == 1
    assert isinstance(result.exception, ValidationError)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, ""), (0.0, "0s"), (59.4, "59s"), (125.0, "2m 5s"), (-138.0, "-2m 18s"),
     (7260.0, "2h 1m"), (90000.0, "1d 1h")],
)
def test_duration(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text
