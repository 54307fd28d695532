"""`mlsec inspect` end to end: table, pinned JSON shape, atomic --output, bad input → exit 2."""

from __future__ import annotations

import hashlib
import json
import os

from tests.conftest import run_mlsec


def test_inspect_table_lists_files_and_ignored(cli, example_model):
    (example_model / ".gitattributes").write_text("* text\n")
    res = cli("inspect", example_model)
    assert res.exit_code == 0
    for name in ("model.safetensors", "training_state.pkl", "safetensors", "pickle"):
        assert name in res.stdout
    assert ".gitattributes" in res.stdout and "default ignore" in res.stdout


def test_inspect_json_contract(cli, example_model):
    res = cli("inspect", example_model, "--format", "json")
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    assert doc["schema"] == "mlsec/inspect/v1"
    art = doc["artifact"]
    assert set(art) == {"path", "kind", "file_count", "total_size", "files", "ignored"}
    files = {f["path"]: f for f in art["files"]}
    w = files["model.safetensors"]
    assert w == {
        "path": "model.safetensors",
        "format": "safetensors",
        "size": (example_model / "model.safetensors").stat().st_size,
        "sha256": hashlib.sha256((example_model / "model.safetensors").read_bytes()).hexdigest(),
    }


def test_inspect_output_file_is_written_atomically(cli, example_model, tmp_path):
    out = tmp_path / "inspect.json"
    res = cli("inspect", example_model, "--format", "json", "--output", out)
    assert res.exit_code == 0 and res.stdout == ""
    assert json.loads(out.read_text())["artifact"]["file_count"] == 5
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_inspect_output_to_missing_dir_is_clean_error(cli, example_model, tmp_path):
    res = cli("inspect", example_model, "--output", tmp_path / "no" / "dir" / "x.json")
    assert res.exit_code == 2
    assert res.stderr.startswith("mlsec: error:") and "Traceback" not in res.stderr


def test_inspect_ignore_option(cli, example_model):
    res = cli("inspect", example_model, "--format", "json", "--ignore", "*.pkl")
    doc = json.loads(res.stdout)
    assert "training_state.pkl" not in {f["path"] for f in doc["artifact"]["files"]}
    assert doc["artifact"]["ignored"] == [
        {"path": "training_state.pkl", "reason": "ignored by '*.pkl'"}
    ]


def test_inspect_symlink_outside_root_exit_2(tmp_path, example_model):
    (tmp_path / "secret").write_text("x")
    os.symlink(tmp_path / "secret", example_model / "leak")
    proc = run_mlsec("inspect", example_model)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("mlsec: error: leak: symlink points outside the artifact")
    assert "Traceback" not in proc.stderr


def test_inspect_directory_loop_exit_2(tmp_path):
    root = tmp_path / "m"
    (root / "a").mkdir(parents=True)
    (root / "a" / "w").write_bytes(b"w")
    os.symlink("..", root / "a" / "loop")
    proc = run_mlsec("inspect", root, "--allow-symlinks")
    assert proc.returncode == 2
    assert proc.stderr.startswith("mlsec: error: a/loop: directory loop")


def test_inspect_stdout_is_pure_json_in_subprocess(example_model):
    proc = run_mlsec("inspect", example_model, "-f", "json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["artifact"]["kind"] == "directory"
    assert proc.stderr == ""
