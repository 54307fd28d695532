"""Hashing throughput of `mlsec inspect` against the hardware floor, in one run.

The floor is OpenSSL's SHA-256 (SHA-NI when the CPU has it) on every core: one
`openssl dgst -sha256` process per core over the same files, balanced by size. Debian's sha256sum
does not use the SHA instructions and would be a flattering (5x slower) baseline.

    python benchmarks/bench_hash.py [--size-gb 2] [--runs 5] [--keep DIR]
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
ENV = dict(os.environ, PYTHONPATH=str(REPO), CI="1")


def build_model(root: Path, size_gb: float) -> Path:
    """Several large files (85% of the bytes) plus many small ones, like a sharded HF snapshot."""
    root.mkdir(parents=True, exist_ok=True)
    total = int(size_gb * 1024**3)
    big = int(total * 0.85)
    shards = 4
    block = os.urandom(64 * 1024 * 1024)
    for i in range(shards):
        left = big // shards
        with open(root / f"model-{i:05d}-of-{shards:05d}.safetensors", "wb") as f:
            while left > 0:
                n = min(left, len(block))
                f.write(block[:n])
                left -= n
    small_dir = root / "extra"
    small_dir.mkdir(exist_ok=True)
    rest, i = total - big, 0
    while rest > 0:
        n = min(rest, 1024 * 1024 + (i % 7) * 4096 + 1)
        (small_dir / f"part-{i:04d}.bin").write_bytes(os.urandom(n))
        rest -= n
        i += 1
    (root / "config.json").write_text('{"model_type": "bench"}\n')
    return root


def files_of(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def floor_cmds(files: list[Path], cores: int) -> list[list[str]]:
    groups: list[list[Path]] = [[] for _ in range(cores)]
    loads = [0] * cores
    for f in sorted(files, key=lambda p: -p.stat().st_size):
        i = loads.index(min(loads))
        groups[i].append(f)
        loads[i] += f.stat().st_size
    return [["openssl", "dgst", "-sha256", *map(str, g)] for g in groups if g]


def time_parallel(cmds: list[list[str]]) -> float:
    start = time.perf_counter()
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL) for c in cmds]
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"failed: {p.args}")
    return time.perf_counter() - start


def time_cmd(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=ENV)
    return time.perf_counter() - start


def time_api(root: Path) -> float:
    """The same work in-process: what is left of the CLI time is interpreter start-up."""
    from mlsec.artifact import open_artifact

    start = time.perf_counter()
    open_artifact(root, digests=True)
    return time.perf_counter() - start


def peak_rss_mib(cmd: list[str]) -> float:
    """Peak RSS of one run of ``cmd`` (in its own process so other runs don't count)."""
    code = (
        "import resource,subprocess,sys;"
        "subprocess.run(sys.argv[1:],check=True,stdout=subprocess.DEVNULL);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *cmd], check=True, capture_output=True, text=True, env=ENV
    )
    return int(out.stdout.strip()) / 1024


def median(fn, runs: int) -> float:
    fn()  # warm-up: page cache, imports
    return statistics.median(fn() for _ in range(runs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size-gb", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", type=Path, help="build (or reuse) the model here and keep it")
    args = ap.parse_args()
    if not shutil.which("openssl"):
        raise SystemExit("openssl is needed for the floor")
    cores = os.cpu_count() or 1
    tmp = None
    if args.keep:
        root = args.keep
        if not root.exists():
            build_model(root, args.size_gb)
    else:
        tmp = tempfile.mkdtemp(prefix="mlsec-bench-")
        root = build_model(Path(tmp) / "model", args.size_gb)
    try:
        files = files_of(root)
        size = sum(f.stat().st_size for f in files)
        mlsec = [sys.executable, "-m", "mlsec"]
        floor = median(lambda: time_parallel(floor_cmds(files, cores)), args.runs)
        inspect = median(lambda: time_cmd([*mlsec, "inspect", str(root), "-f", "json"]), args.runs)
        api = median(lambda: time_api(root), args.runs)
        rss_big = peak_rss_mib([*mlsec, "inspect", str(root), "-f", "json"])

        tiny = Path(tempfile.mkdtemp(prefix="mlsec-tiny-"))
        from mlsec.demo import build_example_model

        build_example_model(tiny / "m")
        help_t = median(lambda: time_cmd([*mlsec, "--help"]), args.runs)
        tiny_t = median(lambda: time_cmd([*mlsec, "inspect", str(tiny / "m")]), args.runs)
        shutil.rmtree(tiny)

        gib = size / 1024**3
        print(f"model: {len(files)} files, {gib:.2f} GiB, {cores} cores, median of {args.runs}")
        print(f"{'what':<42}{'seconds':>9}{'GiB/s':>8}{'x floor':>9}")
        rows = [
            (f"floor: openssl dgst -sha256 x{cores} procs", floor),
            ("mlsec inspect (walk+sniff+hash, json)", inspect),
            ("  library: open_artifact(digests=True)", api),
        ]
        for name, t in rows:
            print(f"{name:<42}{t:>9.3f}{gib / t:>8.2f}{t / floor:>9.2f}")
        print(f"{'mlsec --help':<42}{help_t:>9.3f}")
        print(f"{'mlsec inspect (tiny model)':<42}{tiny_t:>9.3f}")
        print(f"{'peak RSS, mlsec inspect (big model)':<42}{rss_big:>8.0f} MiB")
    finally:
        if tmp:
            shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
