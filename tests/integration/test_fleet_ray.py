"""``mlsec fleet --engine ray`` against a real Ray head started by the test, and a real
docker-registry: the same decisions as the local engine.

The test re-runs itself in a fresh interpreter with Ray's token authentication on and a token of
its own (set before Ray is imported). Ray advertises the machine's interface address even when
told ``--node-ip-address 127.0.0.1``, so as root that interpreter runs in a private network
namespace (``unshare -n``, then ``ip link set lo up``) where loopback is the only interface: all
traffic stays on 127.0.0.1, and the test asserts Ray's node address is 127.0.0.1. Without root
(or without ``unshare``) it runs in the host namespace.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mlsec.fleet import run_fleet
from mlsec.registry import push
from tests.integration.test_fleet import POLICY, _decisions, _model
from tests.registry_server import start_registry

ray = pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[2]
IN_NETNS = "MLSEC_TEST_IN_NETNS"


def _can_unshare() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        return False
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False)
    return probe.returncode == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_ray_head(tmp: Path, ray_tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO), RAY_USAGE_STATS_ENABLED="0")
    log = open(tmp / "ray-head.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
            f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
            "--include-dashboard=false", "--disable-usage-stats",
            f"--temp-dir={ray_tmp}",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: ended as a whole, and only it
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError((tmp / "ray-head.log").read_text()[-3000:])
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"127.0.0.1:{port}"
        time.sleep(0.3)
    raise AssertionError("the Ray head did not start in 90 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def test_ray_engine_gives_the_local_decisions(tmp_path: Path) -> None:
    if os.environ.get(IN_NETNS) is None:
        # Re-run this very test in a fresh interpreter: in a private network namespace with only
        # loopback up when possible, and with Ray's token authentication set before Ray is
        # imported, with a token of the test's own (never ~/.ray/auth_token, which a local
        # ray.init() elsewhere may have written).
        netns = _can_unshare()
        test_id = f"{Path(__file__).relative_to(REPO)}::test_ray_engine_gives_the_local_decisions"
        inner = f"{sys.executable} -m pytest -q -p no:cacheprovider --basetemp={tmp_path / 'i'}"
        argv = ["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {inner} {test_id}"]
        env = dict(os.environ, PYTHONPATH=str(REPO), RAY_AUTH_MODE="token")
        env.update({IN_NETNS: "1" if netns else "0", "RAY_AUTH_TOKEN": secrets.token_hex(32)})
        env.pop("RAY_AUTH_TOKEN_PATH", None)
        r = subprocess.run(
            argv if netns else [*inner.split(), test_id],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
        assert "1 passed" in r.stdout
        return
    reg = start_registry(tmp_path / "registry")
    head = None
    # Ray's AF_UNIX sockets live in its temp dir and their paths may not exceed 107 bytes: a
    # pytest tmp_path is too deep, so a short private directory, removed at the end.
    ray_tmp = Path(tempfile.mkdtemp(prefix="mlsec-ray-", dir="/tmp"))
    try:
        for name, poisoned in (("clean-a", False), ("clean-b", False), ("evil", True)):
            push(_model(tmp_path / "models" / name, name, poisoned), f"{reg.host}/ray/{name}:v1")
        policy = tmp_path / "policy.yaml"
        policy.write_text(POLICY)
        local = run_fleet([reg.host], policy, workers=2)
        head, address = _start_ray_head(tmp_path, ray_tmp)
        ray.init(address=address, log_to_driver=False)
        try:
            if os.environ.get(IN_NETNS) == "1":
                assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
            db = tmp_path / "ray.db"
            distributed = run_fleet([reg.host], policy, store=db, engine="ray")
        finally:
            ray.shutdown()
        assert _decisions(distributed) == _decisions(local)
        assert set(_decisions(local).values()) == {"allow", "deny"}
        assert distributed.engine == "ray" and distributed.stats.files_scanned > 0
        # The driver wrote what the Ray workers sent back: a second pass (through the CLI,
        # connecting by address) reuses every verdict.
        from mlsec.cli.app import run

        out = tmp_path / "again.json"
        code = run(
            [
                "fleet", reg.host, "--policy", str(policy), "--store", str(db),
                "--engine", "ray", "--ray-address", address, "--format", "json", "-o", str(out),
            ]
        )  # fmt: skip
        doc = json.loads(out.read_text())
        assert code == 1 and doc["schema"] == "mlsec/fleet/v1"
        assert doc["stats"]["verdicts_reused"] == 3 and doc["stats"]["blobs_read"] == 0
    finally:
        if head is not None:
            _stop(head)
        reg.stop()
        shutil.rmtree(ray_tmp, ignore_errors=True)
