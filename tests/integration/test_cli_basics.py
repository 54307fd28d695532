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


def test_every_command_has_help(cli):
    import typer.main

    from mlsec.cli.app import app

    group = typer.main.get_command(app)
    names = sorted(group.commands)  # type: ignore[attr-defined]
    assert {"inspect", "demo"} <= set(names)
    for name in names:
        res = cli(name, "--help")
        assert res.exit_code == 0, name
        assert "Usage: mlsec" in res.stdout


def test_python_dash_m_and_quiet_flag(example_model):
    proc = run_mlsec("-q", "inspect", example_model)
    assert proc.returncode == 0
    assert "training_state.pkl" in proc.stdout


def test_a_run_builds_only_its_own_command_group():
    """typer converts every registered command on each run; a run of one command gets an app
    holding only its module's commands (bare mlsec, --help and unknown words get all)."""
    from mlsec.cli.app import _app_for, app

    own = _app_for(["-q", "verify", "m", "--key", "k"])
    names = {c.name for c in own.registered_commands}
    assert names == {"keygen", "sign", "verify"}
    assert _app_for(["--help"]) is app and _app_for(["nosuch"]) is app and _app_for([]) is app
    assert {c.name for c in app.registered_commands} >= {"inspect", "admit", "push", "decrypt"}
