"""``hf://ORG/NAME[@REVISION]`` targets, end to end through the CLI and the real huggingface_hub.

The Hugging Face Hub cannot be reached from the test machines, so these tests run a local HTTP
server (``tests/hub_server.py``, threading ``http.server`` on 127.0.0.1) that answers the API
endpoints huggingface_hub calls — model_info, tree, paths-info, and file resolve with the
``X-Repo-Commit``, ``ETag``, ``X-Linked-Etag``, ``X-Linked-Size`` and ``Location`` headers it reads
— and point ``HF_ENDPOINT`` at it. ``TMPDIR`` is a directory of the test's own, so that a leftover
download directory would be seen. Malicious pickles are built from bytes and never loaded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import REPO, run_mlsec
from tests.hub_server import FakeHub

pytest.importorskip("huggingface_hub")

# GLOBAL os.system, a string, TUPLE1, REDUCE: code execution on load (never loaded here)
MALICIOUS_PICKLE = b"\x80\x02cos\nsystem\nX\x14\x00\x00\x00touch /tmp/mlsec-pwn\x85R."


@pytest.fixture
def hub():
    server = FakeHub().start()
    yield server
    server.stop()


@pytest.fixture
def env(tmp_path: Path, hub: FakeHub) -> dict[str, str]:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    return {
        "HF_ENDPOINT": hub.endpoint,
        "HF_HOME": str(tmp_path / "hf-home"),  # no user token file, no user cache
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TMPDIR": str(tmp),
    }


def mlsec(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_mlsec(*args, env={**env, "HF_TOKEN": ""})


def leftovers(env: dict[str, str]) -> list[str]:
    return sorted(os.listdir(env["TMPDIR"]))


def test_scan_clean_hub_model_names_the_commit(hub, env, example_model):
    commit = hub.add_dir("org/tiny", example_model)
    r = mlsec(env, "scan", "hf://org/tiny", "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["targets"] == [f"hf://org/tiny@{commit}"]
    assert doc["source"] == {
        "type": "huggingface",
        "repo_id": "org/tiny",
        "revision": "main",
        "commit": commit,
        "endpoint": hub.endpoint,
        "target": f"hf://org/tiny@{commit}",
    }
    assert {f["path"] for f in doc["files"]} == {
        p.relative_to(example_model).as_posix() for p in example_model.rglob("*") if p.is_file()
    }
    assert env["TMPDIR"] not in r.stdout
    assert leftovers(env) == []


def test_scan_of_two_hub_models_names_both(hub, env, example_model):
    tiny = hub.add_dir("org/tiny", example_model)
    evil = hub.add("org/evil", {"model.pkl": MALICIOUS_PICKLE})
    r = mlsec(env, "scan", "hf://org/tiny", "hf://org/evil", "--format", "json")
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    assert doc["targets"] == [f"hf://org/tiny@{tiny}", f"hf://org/evil@{evil}"]
    assert [s["commit"] for s in doc["sources"]] == [tiny, evil]
    assert env["TMPDIR"] not in r.stdout
    assert leftovers(env) == []


def test_scan_finds_malicious_pickle_in_hub_model(hub, env, example_model):
    hub.add("org/evil", {"config.json": b"{}\n", "weights/model.pkl": MALICIOUS_PICKLE})
    r = mlsec(env, "scan", "hf://org/evil", "--format", "json")
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    (bad,) = [f for f in doc["files"] if f["path"] == "weights/model.pkl"]
    assert any(x["severity"] == "critical" for x in bad["findings"])
    assert leftovers(env) == []


def test_revision_by_branch_and_by_commit(hub, env, example_model):
    main = hub.add_dir("org/tiny", example_model)
    dev = hub.add("org/tiny", {"model.pkl": MALICIOUS_PICKLE}, branch="dev")
    r = mlsec(env, "scan", "hf://org/tiny@dev", "--format", "json")
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    assert doc["source"]["revision"] == "dev"
    assert doc["source"]["commit"] == dev
    assert doc["targets"] == [f"hf://org/tiny@{dev}"]
    # a commit pins the bytes whatever the branch says now
    r = mlsec(env, "inspect", f"hf://org/tiny@{main}", "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["source"]["commit"] == main
    assert doc["artifact"]["path"] == f"hf://org/tiny@{main}"
    assert "model.safetensors" in {f["path"] for f in doc["artifact"]["files"]}
    # files were fetched at the commit, never at the moving branch name
    resolves = [line for line in hub.log if "/resolve/" in line]
    assert resolves and all(f"/resolve/{dev}/" in x or f"/resolve/{main}/" in x for x in resolves)


@pytest.mark.parametrize("victim", ["model.safetensors", "config.json"])
def test_digest_mismatch_is_exit_2_and_leaves_nothing(hub, env, example_model, victim):
    """LFS file (SHA-256 differs) and regular file (git blob id differs), same length."""
    hub.add_dir("org/tiny", example_model)
    original = (example_model / victim).read_bytes()
    hub.tamper[("org/tiny", victim)] = original[:-1] + bytes([original[-1] ^ 1])
    r = mlsec(env, "scan", "hf://org/tiny", "--format", "json")
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert victim in lines[0]
    assert ("SHA-256" if victim.endswith(".safetensors") else "git blob id") in lines[0]
    assert leftovers(env) == []


def test_missing_repo_is_one_line_exit_2(hub, env):
    r = mlsec(env, "inspect", "hf://org/absent")
    assert r.returncode == 2
    assert r.stderr.startswith("mlsec: error: hf://org/absent: repository not found\n")
    assert "Traceback" not in r.stderr
    assert leftovers(env) == []


def test_missing_revision_and_malformed_target_exit_2(hub, env, example_model):
    hub.add_dir("org/tiny", example_model)
    r = mlsec(env, "scan", "hf://org/tiny@nope")
    assert r.returncode == 2
    assert "hf://org/tiny@nope: revision not found" in r.stderr
    r = mlsec(env, "scan", "hf://../etc")
    assert r.returncode == 2
    assert "expected hf://ORG/NAME[@REVISION]" in r.stderr
    assert leftovers(env) == []


def test_admit_evidence_records_commit(hub, env, example_model):
    commit = hub.add_dir("org/tiny", example_model)
    r = mlsec(env, "admit", "hf://org/tiny@main", "--policy", "permissive", "--format", "json")
    assert r.returncode in (0, 1), r.stderr
    doc = json.loads(r.stdout)
    assert doc["source"]["commit"] == commit
    assert doc["source"]["target"] == f"hf://org/tiny@{commit}"
    assert doc["evidence"]["source"]["commit"] == commit
    assert doc["evidence"]["artifact"]["path"] == f"hf://org/tiny@{commit}"
    text = json.dumps(doc)
    assert env["TMPDIR"] not in text
    assert leftovers(env) == []


def test_sbom_and_verify_take_hub_targets(hub, env, example_model, tmp_path):
    commit = hub.add_dir("org/tiny", example_model)
    r = mlsec(env, "sbom", "hf://org/tiny")
    assert r.returncode == 0, r.stderr
    bom = json.loads(r.stdout)
    names = {c.get("name") for c in bom.get("components", [])}
    assert "model.safetensors" in json.dumps(bom)
    assert names
    # verify: sign the local copy, verify the Hub copy at its commit
    key = tmp_path / "k"
    keyenv = {**env, "MLSEC_PASSPHRASE": "pw"}
    assert run_mlsec("keygen", "--output", key, env=keyenv).returncode == 0
    sig = tmp_path / "model.sig"
    r = run_mlsec("sign", example_model, "--key", f"{key}.key", "--output", sig, env=keyenv)
    assert r.returncode == 0, r.stderr
    r = mlsec(
        env,
        "verify",
        f"hf://org/tiny@{commit}",
        "--signature",
        str(sig),
        "--key",
        f"{key}.pub",
        "--format",
        "json",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["source"]["commit"] == commit
    before = len(hub.log)
    r = mlsec(env, "verify", "hf://org/tiny", "--key", f"{key}.pub")
    assert r.returncode == 2
    assert "give --signature" in r.stderr
    assert not any("/org/tiny" in x for x in hub.log[before:])  # refused before any request
    assert leftovers(env) == []


def test_sigterm_during_download_leaves_no_temp_dir(hub, env, example_model):
    """SIGTERM while a file is being served: exit 143 and the download directory is gone."""
    hub.add_dir("org/tiny", example_model)
    started, release = threading.Event(), threading.Event()
    hub.stall = ("tokenizer.json", started, release)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlsec", "scan", "hf://org/tiny"],
        env={**os.environ, **env, "PYTHONPATH": str(REPO), "CI": "1", "HF_TOKEN": ""},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert started.wait(60)
        assert leftovers(env) != []  # the download directory exists while it runs
        proc.send_signal(signal.SIGTERM)
    finally:
        release.set()
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "terminated by SIGTERM" in err
    assert leftovers(env) == []


def test_library_download_removes_directory(hub, tmp_path, example_model, monkeypatch):
    from mlsec.hub import download

    commit = hub.add_dir("org/tiny", example_model)
    monkeypatch.setenv("HF_TOKEN", "")
    with download("hf://org/tiny@main", endpoint=hub.endpoint, tmp_dir=tmp_path) as model:
        assert model.source.commit == commit
        assert model.path.name == "tiny"
        got = sorted(p.relative_to(model.path).as_posix() for p in model.path.rglob("*"))
        assert [p for p in got if (model.path / p).is_file()] == sorted(f.path for f in model.files)
        assert (model.path / "config.json").read_bytes() == (
            example_model / "config.json"
        ).read_bytes()
    assert not model.path.exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith("mlsec-hf-")] == []
    shutil.rmtree(tmp_path / "hf-home", ignore_errors=True)


def test_unsafe_path_listed_by_the_hub_is_refused(hub, env):
    hub.add("org/escape", {"config.json": b"{}\n", "../../escape.pkl": MALICIOUS_PICKLE})
    r = mlsec(env, "scan", "hf://org/escape")
    assert r.returncode == 2
    assert "unsafe or duplicate path '../../escape.pkl'" in r.stderr
    assert not any("/resolve/" in x for x in hub.log)
    assert leftovers(env) == []


def test_without_huggingface_hub_the_error_names_the_extra(monkeypatch, tmp_path):
    from mlsec.hub import HubError, download

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(HubError) as info, download("hf://org/tiny", tmp_dir=tmp_path):
        pass
    assert info.value.hint is not None and "mlsec[hf]" in info.value.hint
    assert list(tmp_path.iterdir()) == []


def test_endpoint_credentials_stay_out_of_results():
    from mlsec.hub import _public

    assert _public("https://user:secret@hub.example:8443/x") == "https://hub.example:8443/x"
    assert _public("https://hub.example") == "https://hub.example"


def test_in_process_run_forgets_its_source(hub, env, example_model, cli, monkeypatch):
    from mlsec.cli.common import State

    commit = hub.add_dir("org/tiny", example_model)
    for k, v in {**env, "HF_TOKEN": ""}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr("tempfile.tempdir", None)  # TMPDIR is read again
    r = cli("inspect", "hf://org/tiny", "--format", "json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["source"]["commit"] == commit
    assert State.sources == ()
    assert leftovers(env) == []
    r = cli("inspect", example_model, "--format", "json")
    assert "source" not in json.loads(r.stdout)


def test_an_interrupted_download_stops_at_its_next_chunk():
    """The progress hook huggingface_hub calls after every chunk is where a worker stops."""
    from mlsec.hub import _Cancelled, _silent_tqdm

    cancel = threading.Event()
    bar = _silent_tqdm(cancel)(total=10)
    bar.update(5)
    cancel.set()
    with pytest.raises(_Cancelled):
        bar.update(5)
