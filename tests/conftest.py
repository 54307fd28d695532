"""Shared fixtures: the CLI runner and generated example models. Nothing binary lives in git."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run ``mlsec ARGS`` in-process and return its exit code, stdout and stderr."""
    from mlsec.cli.app import run

    def invoke(*args: str | os.PathLike[str]) -> CliResult:
        capsys.readouterr()
        code = run([str(a) for a in args])
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return invoke


def run_mlsec(*args: str | os.PathLike[str], **kw) -> subprocess.CompletedProcess[str]:
    """Run ``python -m mlsec ARGS`` in a subprocess, from this checkout."""
    env = dict(os.environ, PYTHONPATH=str(REPO), CI="1")
    env.update(kw.pop("env", {}))
    return subprocess.run(
        [sys.executable, "-m", "mlsec", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=kw.pop("timeout", 120),
        **kw,
    )


@pytest.fixture
def example_model(tmp_path: Path) -> Path:
    """The same small Hugging Face style model that ``mlsec demo`` builds."""
    from mlsec.demo import build_example_model

    return build_example_model(tmp_path / "tiny-sentiment")
