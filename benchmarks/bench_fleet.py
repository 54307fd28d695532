"""``mlsec fleet`` over a local docker-registry: first pass vs a shell loop of ``mlsec admit``,
then a second pass over the unchanged registry (from the verdict store), bytes read and peak RSS.

    PYTHONPATH=. python benchmarks/bench_fleet.py --models 200 --size-mb 10 [--workers 2] [--ray]

Builds its models (random weights, one in ten with a harmless pickle payload) in a temporary
directory, pushes them to a docker-registry it starts on 127.0.0.1, and removes everything at the
end. The admit loop is timed on ``--loop`` models (default 20) and scaled to the full count.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlsec.registry import push  # noqa: E402
from tests.registry_server import start_registry  # noqa: E402

EVIL = b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93\x8c\x04true\x85R."
POLICY = (
    "apiVersion: mlsec/policy/v1\nname: bench\nscan:\n  fail_on: high\n"
    "signature:\n  required: false\n"
)


def run_fleet_cli(args: list[str]) -> tuple[float, dict[str, object], int]:
    """Run ``mlsec fleet ... --format json`` in a subprocess: seconds, document, peak RSS (KiB)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), CI="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "mlsec", "fleet", *args, "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    seconds = time.perf_counter() - start
    if r.returncode not in (0, 1):
        raise SystemExit(f"mlsec fleet failed ({r.returncode}): {r.stderr[-2000:]}")
    peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return seconds, json.loads(r.stdout), peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=200)
    ap.add_argument("--size-mb", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--loop", type=int, default=20, help="models timed in the admit loop")
    ap.add_argument("--ray", action="store_true", help="also run --engine ray (local Ray)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlsec-bench-fleet-") as tmp:
        work = Path(tmp)
        reg = start_registry(work / "registry")
        try:
            size = int(a.size_mb * 1024 * 1024)
            refs = []
            t0 = time.perf_counter()
            for n in range(a.models):
                m = work / "models" / f"m{n:04d}"
                m.mkdir(parents=True)
                (m / "config.json").write_text(json.dumps({"model_type": "bench", "n": n}))
                (m / "model.safetensors").write_bytes(os.urandom(size))
                if n % 10 == 0:
                    (m / "training_state.pkl").write_bytes(EVIL)
                refs.append(f"{reg.host}/bench/m{n:04d}:v1")
                push(m, refs[-1])
                for p in m.iterdir():
                    p.unlink()  # keep the disk use to the registry's copy
            print(f"pushed {a.models} models of {a.size_mb} MB in {time.perf_counter() - t0:.1f} s")
            policy = work / "policy.yaml"
            policy.write_text(POLICY)
            env = dict(os.environ, PYTHONPATH=str(REPO), CI="1")
            loop = refs[: a.loop]
            start = time.perf_counter()
            for ref in loop:
                subprocess.run(
                    [sys.executable, "-m", "mlsec", "admit", ref, "--policy", str(policy)],
                    capture_output=True,
                    env=env,
                    check=False,
                )
            per_model = (time.perf_counter() - start) / len(loop)
            loop_total = per_model * a.models
            db = work / "verdicts.db"
            common = [reg.host, "--policy", str(policy), "--store", str(db)]
            first_s, first, peak1 = run_fleet_cli([*common, "--workers", str(a.workers)])
            second_s, second, peak2 = run_fleet_cli([*common, "--workers", str(a.workers)])
            rows = [
                ("admit loop (scaled)", loop_total, None, None),
                ("fleet, first pass", first_s, first["stats"], peak1),
                ("fleet, second pass", second_s, second["stats"], peak2),
            ]
            if a.ray:
                ray_s, ray_doc, peak3 = run_fleet_cli(
                    [reg.host, "--policy", str(policy), "--engine", "ray"]
                )
                rows.append(("fleet --engine ray, no store", ray_s, ray_doc["stats"], peak3))
            print(f"\n{a.models} models x {a.size_mb} MB, {a.workers} worker(s)\n")
            print("| run | seconds | bytes read | verdicts reused | largest process RSS so far |")
            print("|---|---:|---:|---:|---:|")
            for name, secs, stats, peak in rows:
                br = f"{stats['bytes_read']:,}" if stats else "all"  # type: ignore[index]
                vr = stats["verdicts_reused"] if stats else "-"  # type: ignore[index]
                pk = f"{peak // 1024} MiB" if peak else "-"
                print(f"| {name} | {secs:.1f} | {br} | {vr} | {pk} |")
            print(f"\nfirst pass vs admit loop: {loop_total / first_s:.1f}x faster")
            print(f"second pass vs first: {first_s / second_s:.1f}x faster")
        finally:
            reg.stop()


if __name__ == "__main__":
    main()
