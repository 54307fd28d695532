"""docs/commands.md is exactly what the commands' --help prints (regenerate it when this fails:
``python -m mlsec.cli.reference > docs/commands.md``)."""

from __future__ import annotations

from pathlib import Path

from mlsec.cli.reference import commands, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "commands.md"


def test_command_reference_is_current() -> None:
    assert DOC.read_text() == render(), (
        "docs/commands.md is stale: run python -m mlsec.cli.reference > docs/commands.md"
    )


def test_every_command_has_a_section() -> None:
    text = DOC.read_text()
    for name in commands():
        assert f"## mlsec {name}\n" in text
        assert f"Usage: mlsec {name} [OPTIONS]" in text
