"""Helpers for scanner tests: scan bytes written to a temp file, end to end through the engine."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from mlsec.artifact import open_artifact
from mlsec.scan import Finding, ScanOptions, ScanReport, scan

ScanBytes = Callable[..., ScanReport]

_counter = itertools.count()


@pytest.fixture
def scan_bytes(tmp_path: Path) -> ScanBytes:
    """Write ``data`` to a fresh file and scan it; returns the ScanReport."""

    def run(
        data: bytes, name: str = "model.pkl", allow: frozenset[str] = frozenset()
    ) -> ScanReport:
        d = tmp_path / f"s{next(_counter)}"
        d.mkdir()
        p = d / name
        p.write_bytes(data)
        return scan(open_artifact(p), ScanOptions(allow_globals=allow))

    return run


def rules_of(report: ScanReport) -> set[str]:
    return {f.rule for f in report.findings}


def worst(report: ScanReport) -> str | None:
    sev = report.max_severity
    return sev.value if sev else None


def by_rule(report: ScanReport, rule: str) -> list[Finding]:
    return [f for f in report.findings if f.rule == rule]
