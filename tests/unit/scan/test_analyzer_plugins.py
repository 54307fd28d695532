"""Extending the scanner: an extra analyzer per format, in-process or through MLSEC_ANALYZERS."""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlsec.formats import Format
from mlsec.scan import registry as reg
from mlsec.scan import scan
from mlsec.scan.base import Blob, ScanContext
from mlsec.scan.model import Finding, Severity

REPO = Path(__file__).resolve().parents[3]


def _house_rule(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    yield ctx.finding("HOUSE-RULE", Severity.LOW, "our own check ran", why="a test plug-in")


def test_registered_analyzer_runs_after_the_built_in_ones(tmp_path, monkeypatch) -> None:
    from mlsec.artifact import open_artifact

    monkeypatch.setattr(reg, "_extra", {})
    monkeypatch.setattr(reg, "_cache", {})
    p = tmp_path / "m.pkl"
    p.write_bytes(pickle.dumps({"a": 1}))
    reg.register_analyzer(Format.PICKLE, _house_rule)
    report = scan(open_artifact(p))
    assert [f.rule for f in report.findings] == ["HOUSE-RULE"]


def test_environment_variable_loads_an_analyzer_in_the_cli(tmp_path) -> None:
    (tmp_path / "houserules.py").write_text(
        "from mlsec.scan.model import Severity\n"
        "def check(blob, ctx):\n"
        "    yield ctx.finding('HOUSE-RULE', Severity.HIGH, 'house rule', why='plug-in')\n"
    )
    model = tmp_path / "m.pkl"
    model.write_bytes(pickle.dumps([1, 2]))
    env = {"PYTHONPATH": f"{REPO}:{tmp_path}", "MLSEC_ANALYZERS": "pickle=houserules:check"}
    r = subprocess.run(
        [sys.executable, "-m", "mlsec", "-q", "scan", str(model), "-f", "json"],
        capture_output=True, text=True, env={**__import__("os").environ, **env},
    )  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert '"HOUSE-RULE"' in r.stdout


@pytest.mark.parametrize("value", ["pickle", "pickle=nocolon", "nosuchformat=a:b"])
def test_malformed_entries_are_usage_errors(monkeypatch, value) -> None:
    from mlsec.errors import UsageError

    monkeypatch.setattr(reg, "_plugins_loaded", False)
    monkeypatch.setattr(reg, "_extra", {})
    monkeypatch.setattr(reg, "_cache", {})
    monkeypatch.setenv("MLSEC_ANALYZERS", value)
    with pytest.raises(UsageError, match="MLSEC_ANALYZERS"):
        reg.analyzer_for(Format.PICKLE)
