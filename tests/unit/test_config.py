"""Config file (mlsec.toml, [tool.mlsec], --config, MLSEC_CONFIG) and MLSEC_<COMMAND>_<OPTION>."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("MLSEC_CONFIG", "MLSEC_SCAN_FORMAT", "MLSEC_SCAN_FAIL_ON"):
        monkeypatch.delenv(var, raising=False)
    # A medium finding: a class from the training script.
    (tmp_path / "m.pkl").write_bytes(b"\x80\x04c__main__\nNet\n)\x81.")
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps({"a": 1}))
    return tmp_path


def test_no_config_uses_built_in_defaults(work, cli):
    r = cli("-q", "scan", "m.pkl")
    assert r.exit_code == 1 and not r.stdout.lstrip().startswith("{")


def test_mlsec_toml_sets_a_commands_defaults(work, cli):
    (work / "mlsec.toml").write_text('[scan]\nfail_on = "high"\nformat = "json"\n')
    r = cli("-q", "scan", "m.pkl")
    assert r.exit_code == 0, r.stderr  # medium no longer fails
    assert json.loads(r.stdout)["schema"] == "mlsec/scan/v1"


def test_dashed_keys_and_list_options(work, cli):
    (work / "mlsec.toml").write_text('[scan]\n"allow-global" = ["__main__.Net"]\n')
    r = cli("-q", "scan", "m.pkl")
    assert r.exit_code == 0, r.stdout + r.stderr


def test_environment_over_file_and_flag_over_environment(work, cli, monkeypatch):
    (work / "mlsec.toml").write_text('[scan]\nfail_on = "low"\n')
    monkeypatch.setenv("MLSEC_SCAN_FAIL_ON", "critical")
    assert cli("-q", "scan", "m.pkl").exit_code == 0  # env wins over the file
    assert cli("-q", "scan", "m.pkl", "--fail-on", "medium").exit_code == 1  # flag wins
    monkeypatch.setenv("MLSEC_SCAN_FORMAT", "json")
    assert json.loads(cli("-q", "scan", "ok.pkl").stdout)["schema"] == "mlsec/scan/v1"


def test_pyproject_tool_table(work, cli):
    (work / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.mlsec.scan]\nfail_on = "critical"\n'
    )
    assert cli("-q", "scan", "m.pkl").exit_code == 0


def test_pyproject_without_table_is_ignored(work, cli):
    (work / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert cli("-q", "scan", "m.pkl").exit_code == 1


def test_mlsec_toml_wins_over_pyproject(work, cli):
    (work / "pyproject.toml").write_text('[tool.mlsec.scan]\nfail_on = "critical"\n')
    (work / "mlsec.toml").write_text('[scan]\nfail_on = "medium"\n')
    assert cli("-q", "scan", "m.pkl").exit_code == 1


def test_explicit_config_flag_and_variable(work, cli, monkeypatch):
    (work / "ci.toml").write_text('[scan]\nfail_on = "critical"\n')
    assert cli("--config", "ci.toml", "-q", "scan", "m.pkl").exit_code == 0
    assert cli("--config=ci.toml", "scan", "m.pkl").exit_code == 0
    monkeypatch.setenv("MLSEC_CONFIG", str(work / "ci.toml"))
    assert cli("-q", "scan", "m.pkl").exit_code == 0
    (work / "other.toml").write_text('[scan]\nfail_on = "medium"\n')
    assert cli("--config", "other.toml", "scan", "m.pkl").exit_code == 1  # flag over variable


def test_missing_explicit_config_is_exit_2(work, cli):
    r = cli("--config", "nope.toml", "scan", "m.pkl")
    assert r.exit_code == 2 and "nope.toml" in r.stderr


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[scan]\nfail_onn = "high"\n', "unknown key 'fail_onn' in [scan]"),
        ('[scna]\nfail_on = "high"\n', "unknown command table [scna]"),
        ('[scan]\nfail_on = ["high"]\n', "must be a single value"),
        ("scan = 3\n", "must be a table"),
        ("[scan\n", "not valid TOML"),
    ],
)
def test_bad_config_names_file_and_key(work, cli, text, needle):
    (work / "mlsec.toml").write_text(text)
    r = cli("-q", "scan", "ok.pkl")
    assert r.exit_code == 2
    assert "mlsec.toml" in r.stderr and needle in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_other_commands_tables_are_not_checked_against_this_one(work, cli):
    (work / "mlsec.toml").write_text('[admit]\npolicy = "strict"\n[scan]\nfail_on = "critical"\n')
    assert cli("-q", "scan", "m.pkl").exit_code == 0


def test_bad_value_is_a_usage_error(work, cli):
    (work / "mlsec.toml").write_text('[scan]\nfail_on = "severe"\n')
    assert cli("-q", "scan", "ok.pkl").exit_code == 2


def test_help_works_with_a_broken_config(work, cli):
    (work / "mlsec.toml").write_text("[broken\n")
    assert cli("scan", "--help").exit_code == 0


def test_config_too_large_is_refused(work, cli):
    (work / "mlsec.toml").write_bytes(b"#" * (2 << 20))
    r = cli("-q", "scan", "ok.pkl")
    assert r.exit_code == 2 and "mlsec.toml" in r.stderr


@pytest.mark.parametrize("deep", ["[" * 5000 + "]" * 5000, "{a = " * 3000 + "1" + "}" * 3000])
def test_deeply_nested_config_is_one_line_exit_2(work, cli, deep):
    (work / "mlsec.toml").write_text(f"[scan]\nfail_on = {deep}\n")
    r = cli("-q", "scan", "ok.pkl")
    assert r.exit_code == 2 and "nested too deep" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
