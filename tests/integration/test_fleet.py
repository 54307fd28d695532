"""``mlsec fleet`` against a real docker-registry: decisions, reuse from the verdict store,
decisions after the blobs are gone, a policy change without reading blobs, a failing registry."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlsec.fleet import VerdictStore, run_fleet
from mlsec.registry import push
from tests.registry_server import Registry, start_registry

# A pickle calling os.system("true") when loaded: never loaded here, only scanned.
EVIL = b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93\x8c\x04true\x85R."

POLICY = """\
apiVersion: mlsec/policy/v1
name: fleet-test
scan:
  fail_on: high
signature:
  required: false
"""
# The same scan rule, and JSON files denied: a change that needs no new evidence.
NO_JSON = POLICY.replace("name: fleet-test", "name: no-json") + "formats:\n  deny: [json]\n"

CLEAN = ("alpha", "beta", "gamma", "delta")
POISONED = ("evil-one", "evil-two")


def _model(root: Path, name: str, poisoned: bool) -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"model_type": "tiny", "name": name}))
    (root / "weights.bin").write_bytes(name.encode() + os.urandom(20_000))
    if poisoned:
        (root / "training_state.pkl").write_bytes(EVIL)
    return root


def _populate(work: Path) -> tuple[Registry, dict[str, str]]:
    """A registry of its own (its catalog is only these models) holding six models."""
    reg = start_registry(work / "registry")
    expected = {}
    for name in CLEAN + POISONED:
        poisoned = name in POISONED
        ref = f"{reg.host}/team/{name}:v1"
        push(_model(work / "models" / name, name, poisoned), ref)
        expected[ref] = "deny" if poisoned else "allow"
    return reg, expected


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, dict[str, str]]]:
    """Six models in a registry the tests only read."""
    reg, expected = _populate(tmp_path_factory.mktemp("fleet"))
    yield reg, expected
    reg.stop()


@pytest.fixture
def own_fleet(tmp_path: Path) -> Iterator[tuple[Registry, dict[str, str]]]:
    """Six models in a registry this test may damage."""
    reg, expected = _populate(tmp_path / "own")
    yield reg, expected
    reg.stop()


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text(POLICY)
    return p


def _decisions(result) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {o.reference: o.decision for o in result.outcomes}


def test_registry_decisions_then_reuse_then_blobs_gone(own_fleet, policy: Path, tmp_path: Path):
    reg, expected = own_fleet
    db = tmp_path / "verdicts.db"
    first = run_fleet([reg.host], policy, store=db, workers=2)
    assert _decisions(first) == expected
    assert first.exit_code == 1
    denied = [o for o in first.outcomes if o.decision == "deny"]
    assert all("os.system" in " ".join(o.reasons) for o in denied)
    assert all(o.digest and o.digest.startswith("sha256:") for o in first.outcomes)
    s = first.stats
    assert (s.models, s.allowed, s.denied, s.errors) == (6, 4, 2, 0)
    assert s.blobs_read == 4 * 2 + 2 * 3 and s.bytes_read > 6 * 20_000
    # The two poisoned models share training_state.pkl: the second may reuse the first's report.
    assert s.verdicts_reused == 0 and s.files_scanned + s.findings_reused == 14

    # The store holds one evidence document per model, one report per distinct file, WAL.
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with VerdictStore(db) as st:
        assert st.counts() == {"files": 13, "evidence": 6, "verdicts": 6}

    second = run_fleet([reg.host], policy, store=db, workers=2)
    assert _decisions(second) == expected
    assert second.stats.blobs_read == 0 and second.stats.bytes_read == 0
    assert second.stats.verdicts_reused == 6 and second.stats.files_scanned == 0
    assert [o.digest for o in second.outcomes] == [o.digest for o in first.outcomes]

    # A policy change is evaluated over the stored evidence: nothing read, new decisions.
    no_json = tmp_path / "no-json.yaml"
    no_json.write_text(NO_JSON)
    changed = run_fleet([reg.host], no_json, store=db, workers=2)
    assert set(_decisions(changed).values()) == {"deny"}
    assert changed.stats.blobs_read == 0 and changed.stats.verdicts_reused == 6
    assert all(any("json" in r for r in o.reasons) for o in changed.outcomes)

    # The weight blobs deleted from the registry's storage: the store still decides.
    gone = 0
    for o in first.outcomes:
        manifest = json.loads(reg.blob_path(o.digest).read_bytes())  # type: ignore[arg-type]
        for layer in manifest["layers"]:
            if layer["annotations"]["org.opencontainers.image.title"] == "weights.bin":
                reg.blob_path(layer["digest"]).unlink()
                gone += 1
    assert gone == 6
    third = run_fleet([reg.host], policy, store=db, workers=2)
    assert _decisions(third) == expected and third.stats.blobs_read == 0
    # Without the store the same registry cannot be judged: error, never allow.
    fresh = run_fleet([reg.host], policy, store=tmp_path / "fresh.db", workers=2)
    assert set(_decisions(fresh).values()) == {"error"} and fresh.exit_code == 2


def test_a_registry_that_fails_gives_errors_not_allows(policy: Path, tmp_path: Path):
    reg = start_registry(tmp_path / "registry")
    refs = []
    for name in ("one", "two"):
        refs.append(f"{reg.host}/gone/{name}:v1")
        push(_model(tmp_path / "models" / name, name, False), refs[-1])
    listing = tmp_path / "models.txt"
    listing.write_text("\n".join(["# the fleet", *refs]) + "\n")
    reg.stop()
    result = run_fleet([f"@{listing}", reg.host], policy, store=tmp_path / "v.db", workers=2)
    assert _decisions(result) == {refs[0]: "error", refs[1]: "error", reg.host: "error"}
    assert all(o.reasons and o.reasons[0] for o in result.outcomes)
    assert result.exit_code == 2


def test_directory_of_models_and_oci_layout(policy: Path, tmp_path: Path):
    models = tmp_path / "models"
    _model(models / "good", "good", False)
    _model(models / "bad", "bad", True)
    db = tmp_path / "v.db"
    result = run_fleet([str(models)], policy, store=db, workers=1)
    assert _decisions(result) == {str(models / "bad"): "deny", str(models / "good"): "allow"}

    # A second pass hashes the files again but scans none of them.
    class Counting:
        def __init__(self) -> None:
            self.calls: list[tuple[str, int]] = []

        def start(self, description: str, total: int) -> None:
            self.calls.append(("start", total))

        def advance(self, amount: int) -> None:
            self.calls.append(("advance", amount))

        def finish(self) -> None:
            self.calls.append(("finish", 0))

    counting = Counting()
    again = run_fleet([str(models)], policy, store=db, workers=1, progress=counting)
    assert counting.calls == [("start", 2), ("advance", 1), ("advance", 1), ("finish", 0)]
    assert _decisions(again) == _decisions(result)
    assert again.stats.files_scanned == 0 and again.stats.findings_reused == 5

    layout = tmp_path / "layout"
    push(models / "good", f"oci:{layout}:good")
    push(models / "bad", f"oci:{layout}:bad")
    from_layout = run_fleet([f"oci:{layout}"], policy, workers=1)
    assert _decisions(from_layout) == {f"oci:{layout}:bad": "deny", f"oci:{layout}:good": "allow"}


def test_cli_json_envelope_table_and_exit_codes(cli, fleet, policy: Path, tmp_path: Path):
    reg, expected = fleet
    db = tmp_path / "v.db"
    r = cli("fleet", f"{reg.host}/team/", "--policy", policy, "--store", db, "--format", "json")
    assert r.exit_code == 1, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "mlsec/fleet/v1" and doc["policy"] == "fleet-test"
    assert set(doc) == {"schema", "mlsec", "policy", "engine", "store", "models", "stats"}
    assert {m["reference"]: m["decision"] for m in doc["models"]} == expected
    assert set(doc["models"][0]) == {"reference", "digest", "decision", "reasons", "reused"}
    assert set(doc["stats"]) == {
        "models", "allowed", "denied", "errors", "blobs_read", "bytes_read",
        "verdicts_reused", "files_scanned", "findings_reused", "seconds",
    }  # fmt: skip
    # Only the clean models, listed in a file: all allowed, exit 0, from the store.
    listing = tmp_path / "clean.txt"
    listing.write_text("".join(f"{ref}\n" for ref, d in expected.items() if d == "allow"))
    r = cli("fleet", f"@{listing}", "--policy", policy, "--store", db)
    assert r.exit_code == 0, r.stderr
    assert "4 model(s) under policy 'fleet-test': 4 allowed, 0 denied, 0 error(s)" in r.stdout
    assert "0 blob(s), 0 B read; 4 verdict(s) reused" in r.stdout
    # A source that is nothing: exit 2 with the reason in the report.
    r = cli("fleet", "no-such-thing", "--policy", policy)
    assert r.exit_code == 2 and "ERROR" in r.stdout and "no-such-thing" in r.stdout


def test_concurrent_runs_share_one_store(fleet, policy: Path, tmp_path: Path):
    from concurrent.futures import ThreadPoolExecutor

    reg, expected = fleet
    db = tmp_path / "shared.db"
    with ThreadPoolExecutor(3) as pool:
        runs = [pool.submit(run_fleet, [reg.host], policy, store=db, workers=1) for _ in range(3)]
        results = [f.result() for f in runs]
    assert all(_decisions(r) == expected for r in results)
    with VerdictStore(db) as st:
        assert st.counts() == {"files": 13, "evidence": 6, "verdicts": 6}
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_catalog_and_tags_follow_link_pagination(fleet):
    from mlsec.registry import RegistryStore

    reg, _ = fleet
    cat = RegistryStore(reg.url, "")
    before = cat.responses
    repos = cat.catalog(page=2)
    assert repos == sorted(f"team/{n}" for n in CLEAN + POISONED)
    assert cat.responses - before >= 3  # six names, two per page
    assert cat.catalog(limit=3, page=2) == repos[:3]
    cat.close()
    st = RegistryStore(reg.url, "team/alpha")
    assert st.tags(page=1) == ["v1"]
    st.close()


def _spawned_workers() -> list[int]:
    """PIDs of this process's multiprocessing workers (spawned children, by their command line)."""
    pids = []
    for task in Path("/proc/self/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:  # a thread that just ended
            continue
        for pid in children:
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmd:
                pids.append(int(pid))
    return pids


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc")
def test_a_lost_local_worker_is_retried_not_skipped(fleet, policy: Path):
    import signal
    import threading

    reg, expected = fleet
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["r"] = run_fleet([reg.host], policy, workers=2)
        except BaseException as exc:  # shown by the assertion below
            box["r"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    killed = None
    while thread.is_alive() and killed is None:
        for pid in _spawned_workers():  # our own child, killed by its PID
            os.kill(pid, signal.SIGKILL)
            killed = pid
            break
    thread.join(120)
    assert killed is not None, "no worker process was seen"
    result = box["r"]
    if isinstance(result, BaseException):
        import traceback

        raise AssertionError("".join(traceback.format_exception(result)))
    assert _decisions(result) == expected  # type: ignore[arg-type]
