"""Scan benchmark: mlsec against picklescan, modelscan (and modelaudit when installed).

Builds its inputs with real torch in a temp dir (or --workdir), warms the page cache, then runs each
tool N times per case as a subprocess (start-up included, as a user sees it) and prints medians:

  big       one PyTorch checkpoint of --big-gib GiB in a few huge tensors (tensor data never read)
  many      one checkpoint with 20,000 tensors (a big pickle, 20k zip entries)
  dir       a directory of 20 small checkpoints
  many-pkl  the data.pkl of "many", alone: the pickle VM without the zip analyzer

    python benchmarks/bench_scan.py [--runs 5] [--big-gib 1.75] [--workdir DIR] [--cases big,many]
                                    [--tools mlsec,picklescan]

Not a timed test: numbers depend on the machine. Targets: big <= 0.25 s, many <= 1 s, dir <= 0.3 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def build_big(dest: Path, gib: float) -> Path:
    import torch

    p = dest / "big.pt"
    if p.exists():
        return p
    n_tensors = 7
    per = int(gib * 1024**3 / n_tensors / 4)
    sd = {f"layer{i}.weight": torch.empty(per, dtype=torch.float32) for i in range(n_tensors)}
    torch.save(sd, p)
    return p


def build_many(dest: Path, n: int = 20_000) -> Path:
    import torch

    p = dest / "many.pt"
    if p.exists():
        return p
    sd = {f"block{i // 10}.layer{i % 10}.weight": torch.zeros(4) for i in range(n)}
    torch.save(sd, p)
    return p


def build_many_pkl(dest: Path, many: Path) -> Path:
    p = dest / "many-data.pkl"
    if not p.exists():
        with zipfile.ZipFile(many) as zf:
            name = next(n for n in zf.namelist() if n.endswith("/data.pkl"))
            p.write_bytes(zf.read(name))
    return p


def build_dir(dest: Path, n: int = 20) -> Path:
    import torch

    d = dest / "small-dir"
    if d.exists():
        return d
    d.mkdir()
    for i in range(n):
        net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))
        torch.save(net.state_dict(), d / f"model{i:02d}.pt")
    return d


def warm(path: Path) -> None:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(16 * 1024 * 1024):
                pass


Tool = Callable[[Path], list[str]]


def tools() -> dict[str, Tool]:
    out: dict[str, Tool] = {
        "mlsec": lambda p: [sys.executable, "-m", "mlsec", "scan", "-f", "json", str(p)],
    }
    if shutil.which("picklescan"):
        out["picklescan"] = lambda p: ["picklescan", "-p", str(p)]
    if shutil.which("modelscan"):
        out["modelscan"] = lambda p: ["modelscan", "-p", str(p)]
    if shutil.which("modelaudit"):
        out["modelaudit"] = lambda p: ["modelaudit", "scan", str(p)]
    return out


def time_cmd(argv: list[str], runs: int) -> tuple[float, int]:
    env = dict(os.environ, PYTHONPATH=str(REPO), PROMPTFOO_DISABLE_TELEMETRY="1", CI="1")
    times = []
    rc = 0
    subprocess.run(argv, capture_output=True, env=env, check=False, timeout=3600)  # warm-up
    for _ in range(runs):
        t = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, env=env, check=False, timeout=3600)
        rc = proc.returncode
        times.append(time.perf_counter() - t)
    return statistics.median(times), rc


def time_inprocess(path: Path, runs: int) -> float:
    sys.path.insert(0, str(REPO))
    from mlsec.artifact import open_artifact
    from mlsec.scan import scan

    times = []
    for _ in range(runs + 1):
        t = time.perf_counter()
        scan(open_artifact(path))
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--big-gib", type=float, default=1.75)
    ap.add_argument("--workdir", type=Path, default=None, help="build inputs here and keep them")
    ap.add_argument("--cases", default="big,many,dir,many-pkl")
    ap.add_argument("--tools", default="", help="comma-separated subset of the installed tools")
    args = ap.parse_args()
    cases = args.cases.split(",")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mlsec-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        inputs: dict[str, Path] = {}
        print(f"building inputs in {work} …", file=sys.stderr)
        if "big" in cases:
            inputs["big"] = build_big(work, args.big_gib)
        if "many" in cases or "many-pkl" in cases:
            many = build_many(work)
            if "many" in cases:
                inputs["many"] = many
            if "many-pkl" in cases:
                inputs["many-pkl"] = build_many_pkl(work, many)
        if "dir" in cases:
            inputs["dir"] = build_dir(work)
        available = tools()
        if args.tools:
            available = {k: v for k, v in available.items() if k in args.tools.split(",")}
        header = ["case", "size", "mlsec (API)", *available]
        rows = []
        for case, path in inputs.items():
            warm(path)
            size = sum(f.stat().st_size for f in ([path] if path.is_file() else path.rglob("*")))
            row = [case, f"{size / 1024**2:.1f} MiB", f"{time_inprocess(path, args.runs):.3f}"]
            for name, argv in available.items():
                med, rc = time_cmd(argv(path), args.runs)
                row.append(f"{med:.3f}" + ("" if rc in (0, 1) else f" (rc={rc})"))
                print(f"  {case:9s} {name:11s} {med:.3f} s", file=sys.stderr)
            rows.append(row)
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        print(f"median of {args.runs} runs, seconds, warm cache, subprocess unless noted")
        for r in [header, *rows]:
            print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
