#!/usr/bin/env python3
"""Benchmark: mlsec sign/verify against the SHA-256 floor and against model_signing.

Builds a ~3 GB model directory (6 large files + many small ones), then measures in one run:

* the floor: ``openssl dgst -sha256``, one process per core in parallel, over the same files
  (balanced by bytes) — reading every byte once at the CPU's SHA-256 speed;
* ``mlsec sign`` / ``mlsec verify`` (key method);
* ``model_signing sign key`` / ``verify key``;
* start-up: sign + verify of a tiny model.

Every timing is the median of ``--repeat`` runs with a warm page cache (the data was just written
and fits in RAM; a cold-cache run measures the disk instead). The directory is deleted at the end
unless ``--keep``. Not a test: run it by hand, `python benchmarks/bench_sign.py`.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


def build(root: Path, large: int, large_mib: int, small: int) -> int:
    root.mkdir(parents=True)
    total = 0
    block = os.urandom(8 * MIB)
    for i in range(large):
        with open(root / f"model-{i:05d}-of-{large:05d}.safetensors", "wb") as f:
            for j in range(large_mib // 8):
                # Vary each block cheaply so files are not identical.
                f.write(j.to_bytes(8, "little") + i.to_bytes(8, "little") + block[16:])
        total += large_mib * MIB
    sub = root / "shards"
    sub.mkdir()
    for i in range(small):
        size = 4096 + (i * 7919) % (256 * 1024)
        (sub / f"part-{i:05d}.bin").write_bytes(os.urandom(size))
        total += size
    (root / "config.json").write_text('{"model_type": "bench"}\n')
    return total


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


CPU: dict[str, float] = {}  # CPU seconds (user+sys) per row: steadier than wall time on a busy box


def timed(argv: list[str], repeat: int, env: dict[str, str] | None = None, name: str = "") -> float:
    times, cpus = [], []
    for _ in range(repeat):
        c, t = _cpu(), time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - t)
        cpus.append(_cpu() - c)
        if proc.returncode != 0:
            raise SystemExit(f"failed: {' '.join(map(str, argv))}\n{proc.stdout}\n{proc.stderr}")
    CPU[name] = statistics.median(cpus)
    return statistics.median(times)


def floor(files: list[Path], repeat: int) -> float:
    cores = os.cpu_count() or 1
    groups: list[list[Path]] = [[] for _ in range(cores)]
    loads = [0] * cores
    for f in sorted(files, key=lambda p: -p.stat().st_size):
        i = loads.index(min(loads))
        groups[i].append(f)
        loads[i] += f.stat().st_size
    times, cpus = [], []
    for _ in range(repeat):
        c, t = _cpu(), time.perf_counter()
        procs = [
            subprocess.Popen(
                ["openssl", "dgst", "-sha256", *map(str, g)], stdout=subprocess.DEVNULL
            )
            for g in groups
            if g
        ]
        for p in procs:
            p.wait()
        times.append(time.perf_counter() - t)
        cpus.append(_cpu() - c)
    CPU["floor"] = statistics.median(cpus)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=None, help="Where to build (default: a temp dir).")
    ap.add_argument("--large", type=int, default=6, help="Number of large files.")
    ap.add_argument("--large-mib", type=int, default=480, help="Size of each large file (MiB).")
    ap.add_argument("--small", type=int, default=1200, help="Number of small files.")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    base = args.dir or Path(tempfile.mkdtemp(prefix="mlsec-bench-sign-"))
    model = base / "model"
    env = dict(os.environ, PYTHONPATH=str(REPO), CI="1")
    mlsec = [sys.executable, "-m", "mlsec"]
    ms = shutil.which("model_signing")
    try:
        if model.is_dir() and any(model.iterdir()):  # --dir of an earlier --keep run: reuse it
            print(f"reusing {model}", file=sys.stderr)
            total = sum(p.stat().st_size for p in model.rglob("*") if p.is_file())
        else:
            print(f"building {model} ...", file=sys.stderr)
            total = build(model, args.large, args.large_mib, args.small)
        files = [p for p in model.rglob("*") if p.is_file()]
        # Flush the writes and read everything once, so every tool sees the same warm cache.
        os.sync()
        for p in files:
            with open(p, "rb") as fh:
                while fh.read(16 * MIB):
                    pass
        gb = total / 1e9
        print(f"{len(files)} files, {gb:.2f} GB, {os.cpu_count()} cores", file=sys.stderr)
        key = base / "k"
        subprocess.run(
            [*mlsec, "keygen", "-o", key, "--no-passphrase", "--force"],
            env=env,
            check=True,
            capture_output=True,
        )
        rows: list[tuple[str, float]] = []

        def row(name: str, argv: list, repeat: int = args.repeat, e: dict | None = None) -> None:
            rows.append((name, timed([str(a) for a in argv], repeat, e, name)))

        rows.append(("floor", floor(files, args.repeat)))
        sig, msig, k, p = base / "mlsec.sig", base / "ms.sig", f"{key}.key", f"{key}.pub"
        row("mlsec sign", [*mlsec, "sign", model, "--key", k, "-o", sig], e=env)
        row("mlsec verify", [*mlsec, "verify", model, "-s", sig, "--key", p], e=env)
        if ms:
            row(
                "model_signing sign key",
                [ms, "sign", "key", "--private_key", k, "--signature", msig, model],
            )
            row(
                "model_signing verify key",
                [ms, "verify", "key", "--public_key", p, "--signature", msig, model],
            )
        tiny = base / "tiny"
        sys.path.insert(0, str(REPO))
        from mlsec.demo import build_example_model

        build_example_model(tiny)
        tsig = base / "tiny.sig"
        row("mlsec sign (tiny model)", [*mlsec, "sign", tiny, "--key", k, "-o", tsig], 5, env)
        row("mlsec verify (tiny model)", [*mlsec, "verify", tiny, "-s", tsig, "--key", p], 5, env)
        if ms:
            row(
                "model_signing sign key (tiny)",
                [ms, "sign", "key", "--private_key", k, "--signature", tsig, tiny],
                3,
            )
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)

    fl, fl_cpu = rows[0][1], CPU["floor"]
    by = dict(rows)
    print(f"\nwall and CPU (user+sys) seconds, median of {args.repeat}; warm page cache")
    print(f"{'what':<34} {'wall s':>7} {'GB/s':>6} {'x floor':>8} {'CPU s':>7} {'x floor':>8}")
    for name, t in rows:
        label = "sha256 floor (openssl, 1 proc/core)" if name == "floor" else name
        cpu = CPU[name]
        if "tiny" in name:
            print(f"{label:<34} {t:7.3f} {'':>6} {'':>8} {cpu:7.3f}")
        else:
            print(
                f"{label:<34} {t:7.3f} {gb / t:6.2f} {t / fl:8.2f} {cpu:7.3f} {cpu / fl_cpu:8.2f}"
            )
    if ms:
        s_up = by["model_signing sign key"] / by["mlsec sign"]
        v_up = by["model_signing verify key"] / by["mlsec verify"]
        s_cpu = CPU["model_signing sign key"] / CPU["mlsec sign"]
        v_cpu = CPU["model_signing verify key"] / CPU["mlsec verify"]
        print(
            f"\nspeed-up over model_signing (wall): sign {s_up:.2f}x, verify {v_up:.2f}x; "
            f"(CPU): sign {s_cpu:.2f}x, verify {v_cpu:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
