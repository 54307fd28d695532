"""The ignore file (.mlsecignore.yaml): matching, expiry, validation, and how scan reports it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest

from mlsec.ignore import IgnoreFile, IgnoreFileError

# GLOBAL of a class outside the allowlist (medium), then an empty tuple and REDUCE; never loaded
UNKNOWN = b"\x80\x02cmypkg.layers\nNet\nq\x00)Rq\x01."
DANGER = b"\x80\x02cos\nsystem\nq\x00X\x05\x00\x00\x00touch\x85R."


def _write(tmp_path, text):
    p = tmp_path / ".mlsecignore.yaml"
    p.write_text(text)
    return p


def test_entries_parse_and_match(tmp_path):
    p = _write(
        tmp_path,
        "findings:\n"
        "  - rule: PICKLE-UNKNOWN-GLOBAL\n"
        "    symbol: mypkg.layers.Net\n"
        "    reason: our own training code\n"
        "  - path: 'ckpt/*.pkl'\n"
        "    reason: old checkpoints\n"
        "    expires: 2020-01-01\n"
        "vulnerabilities:\n"
        "  - id: PYSEC-2018-28\n"
        "    reason: not reachable\n",
    )
    ign = IgnoreFile.load(p, today=dt.date(2026, 12, 2))
    assert [e.line for e in ign.entries] == [2, 5, 9]
    assert [e.kind for e in ign.active] == ["finding", "vulnerability"]
    assert ign.expired[0].path == "ckpt/*.pkl"
    assert ign.suppression_for("PICKLE-UNKNOWN-GLOBAL", "mypkg.layers.Net", "m.pkl", None)
    assert ign.suppression_for("PICKLE-UNKNOWN-GLOBAL", "other.Net", "m.pkl", None) is None
    # the expired entry no longer applies
    assert ign.suppression_for("X", None, "ckpt/a.pkl", None) is None
    assert ign.suppression_for_vulnerability(["CVE-2018-18074", "PYSEC-2018-28"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("findings:\n  - rule: X\n", ":2: every entry needs a reason"),
        ("findings:\n  - reason: why\n", ":2: give at least one of rule"),
        ("findings:\n  - rule: X\n    reason: y\n    color: red\n", ":2: unknown key 'color'"),
        ("findings:\n  - rule: X\n    reason: y\n    expires: soon\n", "expires must be a date"),
        ("findings:\n  - sha256: abc\n    reason: y\n", "sha256 must be 64 hex digits"),
        ("vulnerabilities:\n  - reason: y\n", "needs an id"),
        ("rules: []\n", "unknown key 'rules'"),
        ("findings: {rule: X}\n", "findings must be a list"),
    ],
)
def test_bad_entries_are_errors_naming_the_file(tmp_path, text, message):
    p = _write(tmp_path, text)
    with pytest.raises(IgnoreFileError, match=message) as exc:
        IgnoreFile.load(p)
    assert str(p) in str(exc.value)


def test_scan_suppresses_and_keeps_visible(cli, tmp_path, monkeypatch):
    model = tmp_path / "m"
    model.mkdir()
    (model / "net.pkl").write_bytes(UNKNOWN)
    (model / "evil.pkl").write_bytes(DANGER)
    digest = hashlib.sha256(UNKNOWN).hexdigest()
    _write(
        tmp_path,
        f"findings:\n  - sha256: {digest}\n    reason: reviewed net.pkl\n"
        "  - rule: PICKLE-DANGEROUS-GLOBAL\n    reason: never\n    expires: 2001-01-01\n",
    )
    monkeypatch.chdir(tmp_path)  # .mlsecignore.yaml is found in the current directory
    res = cli("scan", model, "--format", "json")
    assert res.exit_code == 1  # evil.pkl: its entry has expired
    assert "expired on 2001-01-01" in res.stderr
    doc = json.loads(res.stdout)
    files = {f["path"]: f for f in doc["files"]}
    assert files["net.pkl"]["findings"] == []
    sup = files["net.pkl"]["suppressed"]
    assert sup and sup[0]["suppression"]["reason"] == "reviewed net.pkl"
    assert files["evil.pkl"]["findings"]
    assert doc["summary"]["suppressed"] == len(sup)
    assert doc["ignore"]["expired"][0]["rule"] == "PICKLE-DANGEROUS-GLOBAL"
    # without the dangerous file the same ignore file makes the scan pass
    (model / "evil.pkl").unlink()
    assert cli("scan", model).exit_code == 0
    # SARIF: the suppressed result is there, marked as suppressed
    sarif = json.loads(cli("scan", model, "--format", "sarif").stdout)
    results = sarif["runs"][0]["results"]
    assert results and all(r["suppressions"][0]["kind"] == "external" for r in results)


def test_explicit_ignorefile_and_bad_one_is_exit_2(cli, tmp_path):
    (tmp_path / "net.pkl").write_bytes(UNKNOWN)
    bad = tmp_path / "ign.yaml"
    bad.write_text("findings:\n  - symbol: mypkg.layers.Net\n")
    res = cli("scan", tmp_path / "net.pkl", "--ignorefile", bad)
    assert res.exit_code == 2
    assert "every entry needs a reason" in res.stderr
    bad.write_text("findings:\n  - symbol: mypkg.layers.Net\n    reason: ours\n")
    assert cli("scan", tmp_path / "net.pkl", "--ignorefile", bad).exit_code == 0
    assert cli("scan", tmp_path / "net.pkl").exit_code == 1


def test_clean_scan_is_one_line(cli, tmp_path):
    (tmp_path / "ok.pkl").write_bytes(b"\x80\x02]q\x00.")
    res = cli("scan", tmp_path / "ok.pkl")
    assert res.exit_code == 0
    assert res.stdout == "mlsec scan: 1 file, no findings\n"
