"""The GitHub Action (action.yml) run as GitHub runs it: its shell steps with the environment a
runner provides (RUNNER_TEMP, GITHUB_WORKSPACE, GITHUB_OUTPUT, GITHUB_PATH, GITHUB_ACTION_PATH).
The upload-sarif step is GitHub's own action and cannot run here; its pin and inputs are checked."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

ACTION = yaml.safe_load((REPO / "action.yml").read_text())


def _outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """RUNNER_TEMP with mlsec installed by the action's install step (once for the module)."""
    temp = tmp_path_factory.mktemp("runner")
    env = dict(
        os.environ,
        RUNNER_TEMP=str(temp),
        GITHUB_ACTION_PATH=str(REPO),
        GITHUB_PATH=str(temp / "github_path"),
        MLSEC_VERSION="",
        # the runner here already has mlsec's dependencies: reuse them instead of downloading
        MLSEC_VENV_FLAGS="--system-site-packages",
    )
    step = ACTION["runs"]["steps"][0]
    assert step["run"] == 'bash "$GITHUB_ACTION_PATH/action/install.sh"'
    proc = subprocess.run(
        ["bash", "-c", step["run"]], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    assert (temp / "mlsec-venv" / "bin" / "mlsec").exists()
    assert (temp / "github_path").read_text().strip() == str(temp / "mlsec-venv" / "bin")
    return env


def _run_step(runner: dict[str, str], workspace: Path, tmp_path: Path, **inputs: str):
    """The action's run step, its env built from action.yml with ``inputs`` (defaults otherwise)."""
    step = next(s for s in ACTION["runs"]["steps"] if s.get("id") == "run")
    values = {k: str(v.get("default", "")) for k, v in ACTION["inputs"].items()}
    values.update(inputs)
    env = dict(runner, GITHUB_WORKSPACE=str(workspace), GITHUB_OUTPUT=str(tmp_path / "out"))
    for name, expr in step["env"].items():
        key = re.fullmatch(r"\$\{\{ inputs\.([\w-]+) \}\}", expr)
        assert key, expr
        env[name] = values[key.group(1)]
    proc = subprocess.run(
        ["bash", "-c", step["run"]], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr  # the step itself never fails; the last one does
    return _outputs(tmp_path / "out")


def test_upload_step_is_pinned_by_commit():
    upload = next(s for s in ACTION["runs"]["steps"] if "upload-sarif" in s.get("uses", ""))
    assert re.fullmatch(r"github/codeql-action/upload-sarif@[0-9a-f]{40}", upload["uses"])
    assert upload["with"]["sarif_file"] == "${{ steps.run.outputs.sarif-file }}"
    assert "always()" in upload["if"]


def test_clean_model_passes_with_sarif(runner, example_model, tmp_path):
    out = _run_step(runner, example_model.parent, tmp_path, path=example_model.name)
    assert out["exit-code"] == "0"
    sarif = json.loads(Path(out["sarif-file"]).read_text())
    assert sarif["version"] == "2.1.0"
    assert sarif["runs"][0]["results"] == []


def test_malicious_pickle_fails_and_is_in_sarif(runner, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    # GLOBAL os.system, then a harmless argument: never loaded, only scanned
    (ws / "model.pkl").write_bytes(b"\x80\x02cos\nsystem\nq\x00X\x05\x00\x00\x00touch\x85R.")
    out = _run_step(runner, ws, tmp_path, path="model.pkl")
    assert out["exit-code"] == "1"
    results = json.loads(Path(out["sarif-file"]).read_text())["runs"][0]["results"]
    assert any("os.system" in json.dumps(r) for r in results)
    # the final step exits with mlsec's code, so the job fails
    last = ACTION["runs"]["steps"][-1]
    proc = subprocess.run(["bash", "-c", last["run"]], env={"MLSEC_EXIT": out["exit-code"]})
    assert proc.returncode == 1


def test_admit_with_json_output(runner, example_model, tmp_path):
    out = _run_step(
        runner,
        example_model.parent,
        tmp_path,
        path=example_model.name,
        command="admit",
        policy="permissive",
        format="json",
    )
    assert out["exit-code"] == "0", out
    decision = json.loads(Path(out["result-file"]).read_text())
    assert decision["schema"].startswith("mlsec/")
    assert out["sarif-file"]  # the scan behind the decision goes to code scanning


def test_unknown_command_is_exit_2(runner, example_model, tmp_path):
    out = _run_step(runner, example_model.parent, tmp_path, path="x", command="launch")
    assert out["exit-code"] == "2"
