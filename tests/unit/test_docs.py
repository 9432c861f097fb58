"""Docs move with the code: every configuration key and every CLI command is documented."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from mailhop.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def _keys() -> list[tuple[str, str]]:
    out = []
    for section, info in Settings.model_fields.items():
        args = typing.get_args(info.annotation)
        model = args[0] if args else info.annotation
        heading = f"[[{section}]]" if args else f"[{section}]"  # a list of tables
        out += [(heading, key) for key in model.model_fields]  # type: ignore[union-attr]
    return out


@pytest.mark.parametrize(("heading", "key"), _keys())
def test_every_config_key_is_documented(heading: str, key: str) -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert f"## `{heading}`" in doc
    part = doc.split(f"## `{heading}`", 1)[1].split("\n## ", 1)[0]
    assert f"| `{key}` |" in part


def test_readme_opens_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text().splitlines()
    block = readme[readme.index("```sh") + 1: readme.index("```sh") + 3]
    assert block[0].startswith("make serve") and block[1].startswith("make test")
