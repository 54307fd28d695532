"""The CLI as a user meets it: help, version, demo, exit codes, one-line errors."""

from __future__ import annotations

from tests.conftest import run_mlsec


def test_help_lists_commands():
    proc = run_mlsec("--help")
    assert proc.returncode == 0
    for cmd in ("inspect", "demo"):
        assert cmd in proc.stdout


def test_version():
    from mlsec import __version__

    proc = run_mlsec("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"mlsec {__version__}"


def test_demo_runs_every_step():
    proc = run_mlsec("demo")
    assert proc.returncode == 0, proc.stderr
    assert "every step gave the expected result" in proc.stdout


def test_missing_path_is_one_line_exit_2(tmp_path):
    proc = run_mlsec("inspect", tmp_path / "nope")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"mlsec: error: {tmp_path / 'nope'}: no such file or directory"
    ]
    assert "Traceback" not in proc.stderr


def test_unknown_option_is_usage_error_exit_2():
    proc = run_mlsec("inspect", "--no-such-option", ".")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
