"""``mlsec scan`` end to end: formats, exit codes, options, JSON contract."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from tests.conftest import run_mlsec

from .samples import dumps_reduce


@pytest.fixture
def files(tmp_path: Path) -> Path:
    d = tmp_path / "models"
    d.mkdir()
    (d / "good.pkl").write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    (d / "evil.pkl").write_bytes(dumps_reduce(os.system, "touch /tmp/x"))
    (d / "custom.pkl").write_bytes(b"\x80\x04\x8c\x0bmypkg.model\x8c\x03Net\x93)\x81.")
    (d / "notes.txt").write_text("hello")
    return d


def test_clean_file_exits_0(cli, files: Path) -> None:
    r = cli("scan", files / "good.pkl")
    assert r.exit_code == 0, r.stderr
    assert "no findings" in r.stdout


def test_malicious_file_exits_1_with_table(cli, files: Path) -> None:
    r = cli("scan", files / "evil.pkl")
    assert r.exit_code == 1
    for text in ("evil.pkl", "critical", "PICKLE-DANGEROUS-GLOBAL", "system"):
        assert text in r.stdout


def test_directory_and_several_paths(cli, files: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.pkl"
    other.write_bytes(pickle.dumps([1]))
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / "evil.pkl").write_bytes((files / "evil.pkl").read_bytes())
    r = cli("scan", files, other, twin, "--format", "json")
    doc = json.loads(r.stdout)
    paths = {f["path"] for f in doc["files"]}
    # Several targets: each file is named with its target, so two evil.pkl stay apart.
    names = ("good.pkl", "evil.pkl", "custom.pkl", "notes.txt")
    assert {f"{files}/{n}" for n in names} | {str(other), f"{twin}/evil.pkl"} <= paths
    flagged = {f["file"] for x in doc["files"] for f in x["findings"]}
    assert {f"{files}/evil.pkl", f"{twin}/evil.pkl"} <= flagged
    assert r.exit_code == 1
    # One target: paths stay relative to it.
    one = json.loads(cli("scan", files, "--format", "json").stdout)
    assert "evil.pkl" in {f["path"] for f in one["files"]}


def test_fail_on_threshold(cli, files: Path) -> None:
    assert cli("scan", files / "custom.pkl").exit_code == 1  # medium, default threshold
    assert cli("scan", files / "custom.pkl", "--fail-on", "high").exit_code == 0
    assert cli("scan", files / "evil.pkl", "--fail-on", "critical").exit_code == 1


def test_allow_global(cli, files: Path) -> None:
    r = cli("scan", files / "custom.pkl", "--allow-global", "mypkg.model.Net")
    assert r.exit_code == 0, r.stdout
    assert cli("scan", files / "custom.pkl", "--allow-global", "nodot").exit_code == 2


def test_missing_path_exits_2(cli, tmp_path: Path) -> None:
    r = cli("scan", tmp_path / "nope.pkl")
    assert r.exit_code == 2
    assert "nope.pkl" in r.stderr


def test_json_contract(cli, files: Path) -> None:
    """The JSON shape is a public contract (mlsec/scan/v1): pin its keys."""
    doc = json.loads(cli("scan", files / "evil.pkl", "-f", "json").stdout)
    assert set(doc) == {"schema", "targets", "engines", "duration_s", "summary", "files"}
    assert doc["schema"] == "mlsec/scan/v1"
    assert doc["engines"] == ["mlsec"]
    assert set(doc["summary"]) == {"files", "findings"}
    assert set(doc["summary"]["findings"]) == {"critical", "high", "medium", "low", "info"}
    (f,) = doc["files"]
    assert set(f) == {"path", "format", "size", "globals", "members_scanned", "findings"}
    assert f["globals"] == ["posix.system"] or f["globals"] == ["os.system"]
    (finding,) = f["findings"]
    assert set(finding) == {
        "rule", "severity", "file", "member", "format", "symbol", "offset", "message", "why",
        "engine",
    }  # fmt: skip
    assert finding["severity"] == "critical" and finding["engine"] == "mlsec"


def test_json_is_pure_json_when_clean(cli, files: Path) -> None:
    r = cli("scan", files / "good.pkl", "--format", "json")
    assert json.loads(r.stdout)["summary"]["findings"]["critical"] == 0


def test_output_file(cli, files: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.sarif"
    r = cli("scan", files / "evil.pkl", "--format", "sarif", "--output", out)
    assert r.exit_code == 1
    assert r.stdout == ""
    assert json.loads(out.read_text())["version"] == "2.1.0"


def test_engine_modelscan_merges(cli, files: Path) -> None:
    import modelscan  # noqa: F401 - a test dependency: fail, never skip, when it is missing

    doc = json.loads(cli("scan", files / "evil.pkl", "--engine", "all", "-f", "json").stdout)
    engines = {f["engine"] for fr in doc["files"] for f in fr["findings"]}
    assert engines == {"mlsec", "modelscan"}
    assert doc["engines"] == ["mlsec", "modelscan"]


def test_engine_modelscan_missing_is_one_line_error(files: Path) -> None:
    # Hide modelscan from the subprocess with a stub package that fails to import.
    stub = files.parent / "stub"
    (stub / "modelscan").mkdir(parents=True)
    (stub / "modelscan" / "__init__.py").write_text("raise ImportError('hidden')\n")
    env = {"PYTHONPATH": f"{stub}{os.pathsep}{Path(__file__).resolve().parents[3]}"}
    r = run_mlsec("scan", files / "good.pkl", "--engine", "modelscan", env=env)
    assert r.returncode == 2
    assert "modelscan" in r.stderr and "Traceback" not in r.stderr


def test_subprocess_exit_codes(files: Path) -> None:
    assert run_mlsec("scan", files / "good.pkl").returncode == 0
    assert run_mlsec("scan", files / "evil.pkl").returncode == 1


def test_scan_does_not_import_heavy_modules(files: Path) -> None:
    code = (
        "import sys; from mlsec.cli.app import run; run(['scan', '-f', 'json', {!r}]); "
        "heavy = [m for m in ('torch', 'numpy', 'sklearn', 'modelscan') if m in sys.modules]; "
        "sys.stderr.write('HEAVY=' + ','.join(heavy))"
    ).format(str(files / "good.pkl"))
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                       cwd=Path(__file__).resolve().parents[3])  # fmt: skip
    assert "HEAVY=" in r.stderr and r.stderr.rsplit("HEAVY=", 1)[1].strip() == ""


def test_demo_scan_step(tmp_path: Path) -> None:
    from mlsec.cli.demo import DemoContext, _step_scan
    from mlsec.demo import build_example_model

    model = build_example_model(tmp_path / "m")
    assert _step_scan(DemoContext(workdir=tmp_path, model=model))
    from mlsec.artifact import open_artifact
    from mlsec.scan import scan

    report = scan(open_artifact(tmp_path / "malicious" / "training_state.pkl"))
    assert {f.rule for f in report.findings} == {"PICKLE-DANGEROUS-GLOBAL"}
