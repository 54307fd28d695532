"""Start-up imports only what the command uses (issue 10). Asserts module names seen by
``python -X importtime``, never timings."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

# Never needed to print the version or to scan a small pickle.
HEAVY = ("rich", "cryptography", "sigstore", "requests", "urllib3", "numpy", "torch", "yaml")
OTHER_CAPABILITIES = (
    "mlsec.signing",
    "mlsec.crypt",
    "mlsec.registry",
    "mlsec.sbom",
    "mlsec.policy",
)
OTHER_COMMANDS = tuple(
    f"mlsec.cli.{m}" for m in ("inspect", "sbom", "sign", "crypt", "registry", "admit", "demo")
)


def _imported(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    env = dict(os.environ, PYTHONPATH=str(REPO), CI="1")
    env.pop("MLSEC_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mlsec", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # no mlsec.toml, pyproject.toml or .mlsecignore.yaml of the checkout
        env=env,
        timeout=120,
    )
    names = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "mlsec" in names, proc.stderr  # the parse saw something
    return proc, names


def _loaded(names: set[str], roots: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(n == r or n.startswith(r + ".") for r in roots))


def test_version_imports_neither_typer_nor_any_command(tmp_path: Path) -> None:
    from mlsec import __version__

    proc, names = _imported(tmp_path, "--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"mlsec {__version__}"
    assert _loaded(names, ("typer", "click", "mlsec.cli.common", *HEAVY)) == []


@pytest.mark.parametrize("args", [["--debug", "--version"], ["-q", "--config", "x", "--version"]])
def test_version_fast_path_matches_click(tmp_path: Path, args: list[str]) -> None:
    proc, names = _imported(tmp_path, *args)
    assert proc.returncode == 0 and proc.stdout.startswith("mlsec ")
    assert "typer" not in names


def test_version_after_an_unknown_option_is_still_clicks_error(tmp_path: Path) -> None:
    proc, names = _imported(tmp_path, "--no-such", "--version")
    assert proc.returncode == 2
    assert "No such option" in proc.stderr
    assert "typer" in names


def test_scan_of_a_small_pickle_imports_only_what_scanning_needs(tmp_path: Path) -> None:
    small = tmp_path / "small.pkl"
    small.write_bytes(pickle.dumps({"weights": [1.0, 2.0], "step": 3}))
    proc, names = _imported(tmp_path, "-q", "scan", str(small))
    assert proc.returncode == 0, proc.stderr
    assert "no findings" in proc.stdout
    assert "mlsec.cli.scan" in names and "typer" in names
    assert _loaded(names, HEAVY) == []
    assert _loaded(names, OTHER_CAPABILITIES + OTHER_COMMANDS) == []
    assert _loaded(names, ("concurrent.futures", "hashlib")) == []  # nothing is hashed


def test_command_table_matches_what_the_modules_register() -> None:
    import importlib

    import typer

    from mlsec.cli import app as app_module

    seen: dict[str, str] = {}
    for module in app_module._MODULES:
        own = typer.Typer()
        importlib.import_module(f"mlsec.cli.{module}").register(own)
        for info in own.registered_commands:
            seen[info.name or ""] = module
    assert seen == app_module._COMMANDS


def _main_in_subprocess(tmp_path: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run the console script's main() with a probe that reports, from inside the scan command,
    whether the garbage collector is on and how many objects start-up froze out of it."""
    code = (
        "import functools, gc, sys\n"
        "import mlsec.cli.scan as s\n"
        "orig = s.scan_cmd\n"
        "@functools.wraps(orig)\n"
        "def probe(*a, **k):\n"
        "    print('in-command', gc.isenabled(), gc.get_freeze_count() > 0, file=sys.stderr)\n"
        "    return orig(*a, **k)\n"
        "s.scan_cmd = probe\n"
        "from mlsec.cli.app import main\n"
        "sys.argv = ['mlsec', *sys.argv[1:]]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as e:\n"
        "    print('after', gc.isenabled(), e.code, file=sys.stderr)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), CI="1")
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )


def test_the_collector_is_paused_for_start_up_only(tmp_path: Path) -> None:
    small = tmp_path / "small.pkl"
    small.write_bytes(pickle.dumps([1, 2, 3]))
    proc = _main_in_subprocess(tmp_path, ["-q", "scan", str(small)])
    assert "in-command True True" in proc.stderr, proc.stderr  # on, start-up objects frozen
    assert "after True 0" in proc.stderr
    proc = _main_in_subprocess(tmp_path, ["--version"])  # ends before any command is built
    assert "after True 0" in proc.stderr and "in-command" not in proc.stderr
    proc = _main_in_subprocess(tmp_path, ["scan", "--no-such-flag"])
    assert "after True 2" in proc.stderr


def test_run_in_process_leaves_the_collector_alone() -> None:
    import gc

    from mlsec.cli.app import run

    frozen = gc.get_freeze_count()
    assert run(["--version"]) == 0
    assert run(["scan", "--no-such-flag"]) == 2
    assert gc.isenabled() and gc.get_freeze_count() == frozen
