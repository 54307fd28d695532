"""SARIF 2.1.0 output: the structure GitHub code scanning requires."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .samples import dumps_reduce


def _sarif(cli, path: Path, cwd: Path) -> dict:
    old = Path.cwd()
    os.chdir(cwd)
    try:
        r = cli("scan", path, "--format", "sarif")
    finally:
        os.chdir(old)
    assert r.exit_code == 1
    return json.loads(r.stdout)


def test_sarif_shape(cli, tmp_path: Path) -> None:
    d = tmp_path / "repo" / "models"
    d.mkdir(parents=True)
    (d / "evil.pkl").write_bytes(dumps_reduce(os.system, "touch /tmp/x"))
    (d / "odd.pkl").write_bytes(b"\x80\x04\x8c\x03pkg\x8c\x01X\x93)\x81.")
    doc = _sarif(cli, Path("models"), tmp_path / "repo")
    assert doc["version"] == "2.1.0"
    assert doc["$schema"].endswith("sarif-2.1.0.json")
    (run,) = doc["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "mlsec" and driver["version"]
    rules = {r["id"]: r for r in driver["rules"]}
    assert {"PICKLE-DANGEROUS-GLOBAL", "PICKLE-UNKNOWN-GLOBAL"} <= set(rules)
    for r in rules.values():
        assert r["shortDescription"]["text"] and r["help"]["text"]
        assert r["properties"]["security-severity"]
    levels = {}
    for res in run["results"]:
        assert driver["rules"][res["ruleIndex"]]["id"] == res["ruleId"]
        loc = res["locations"][0]["physicalLocation"]
        assert not loc["artifactLocation"]["uri"].startswith("/")
        assert loc["region"]["startLine"] >= 1
        assert res["partialFingerprints"]
        levels[loc["artifactLocation"]["uri"]] = res["level"]
    assert levels == {"models/evil.pkl": "error", "models/odd.pkl": "warning"}


def test_fingerprints_are_stable(cli, tmp_path: Path) -> None:
    (tmp_path / "evil.pkl").write_bytes(dumps_reduce(os.system, "touch /tmp/x"))
    a = _sarif(cli, Path("evil.pkl"), tmp_path)
    b = _sarif(cli, Path("evil.pkl"), tmp_path)
    fa = [r["partialFingerprints"] for r in a["runs"][0]["results"]]
    assert fa == [r["partialFingerprints"] for r in b["runs"][0]["results"]]


def test_sarif_member_is_a_logical_location() -> None:
    from mlsec.scan.model import FileReport, Finding, ScanReport, Severity
    from mlsec.scan.sarif import to_sarif

    f = Finding("PICKLE-DANGEROUS-GLOBAL", Severity.CRITICAL, "m.pt", "msg", member="a/data.pkl")
    doc = to_sarif(ScanReport(("m.pt",), (FileReport("m.pt", "pytorch-zip", 1, (f,)),)))
    (res,) = doc["runs"][0]["results"]
    assert res["locations"][0]["logicalLocations"][0]["name"] == "a/data.pkl"
    assert "a/data.pkl" in res["message"]["text"]
