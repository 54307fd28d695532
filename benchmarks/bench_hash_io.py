"""Which read strategy hashes at the floor on this CPU: read() buffer sizes against mmap windows.

Writes 4 x 512 MiB files (``--mib`` each), then, round-robin for ``--runs`` rounds, hashes them
all on one thread per core with each strategy, one process per measurement, against
``openssl dgst -sha256`` (one process per core). Prints median wall, user, sys and user+sys CPU
seconds (from ``getrusage`` of the children: on a shared machine the CPU time is the steadier
figure). This is the measurement behind mlsec's choice of ``read()`` into an L2-sized buffer
(see benchmarks/RESULTS.md).

    python benchmarks/bench_hash_io.py [--mib 512] [--runs 5] [--dir DIR]
           [--cases read:256,read:1024,read:4096,mmap:8192,mmap_populate:8192]

A case is STRATEGY:KIB (the buffer or mapping window in KiB); strategies: read (readinto a
reused buffer), mmap (read-only windows), mmap_populate (MAP_POPULATE), mmap_sequential
(MADV_SEQUENTIAL). Not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import mmap
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

MIB = 1024 * 1024
_local = threading.local()


def _hash_read(path: str, size: int) -> str:
    h = hashlib.sha256()
    buf = getattr(_local, "buf", None)
    if buf is None:
        buf = _local.buf = bytearray(size)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def _hash_mmap(path: str, window: int, flags: int = 0, advice: int | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        total, done = os.fstat(f.fileno()).st_size, 0
        while done < total:
            n = min(window, total - done)
            with mmap.mmap(
                f.fileno(), n, flags=mmap.MAP_SHARED | flags, prot=mmap.PROT_READ, offset=done
            ) as w:
                if advice is not None:
                    w.madvise(advice)
                h.update(w)
            done += n
    return h.hexdigest()


def worker(case: str, files: list[str]) -> None:
    strategy, kib = case.split(":")
    size = int(kib) * 1024
    fn = {
        "read": lambda p: _hash_read(p, size),
        "mmap": lambda p: _hash_mmap(p, size),
        "mmap_populate": lambda p: _hash_mmap(p, size, mmap.MAP_POPULATE),
        "mmap_sequential": lambda p: _hash_mmap(p, size, 0, mmap.MADV_SEQUENTIAL),
    }[strategy]
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(fn, files))


def timed(argvs: list[list[str]]) -> tuple[float, float, float]:
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    procs = [subprocess.Popen(a, stdout=subprocess.DEVNULL) for a in argvs]
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"{p.args} failed")
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3:])
        return 0
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument(
        "--cases", default="read:256,read:512,read:1024,read:4096,mmap:8192,mmap_populate:8192"
    )
    args = ap.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="mlsec-bench-hash-io-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        block = os.urandom(64 * MIB)
        files = []
        for i in range(4):
            p = base / f"big{i}.bin"
            files.append(str(p))
            if not p.exists() or p.stat().st_size != args.mib * MIB:
                with open(p, "wb") as f:
                    for _ in range(max(1, args.mib // 64)):
                        f.write(block)
        for p in files:  # warm the page cache
            with open(p, "rb") as f:
                while f.read(16 * MIB):
                    pass
        cores = os.cpu_count() or 1
        floor = [["openssl", "dgst", "-sha256", *files[i::cores]] for i in range(cores)]
        cases = args.cases.split(",")
        results: dict[str, list[tuple[float, float, float]]] = {"openssl": []}
        for _ in range(args.runs):
            results["openssl"].append(timed([a for a in floor if len(a) > 2]))
            for case in cases:
                argv = [sys.executable, __file__, "--worker", case, *files]
                results.setdefault(case, []).append(timed([argv]))
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)
    print(f"{4 * args.mib} MiB in 4 files, {cores} cores, median of {args.runs}; warm cache")
    print(f"{'case':<22} {'wall':>7} {'user':>7} {'sys':>7} {'CPU':>7} {'CPU x floor':>11}")
    fl = statistics.median(u + s for _, u, s in results["openssl"])
    for case, xs in results.items():
        cpu = statistics.median(u + s for _, u, s in xs)
        wall, user, system = (statistics.median(x[i] for x in xs) for i in range(3))
        print(f"{case:<22} {wall:7.3f} {user:7.3f} {system:7.3f} {cpu:7.3f} {cpu / fl:11.2f}")
    print(f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
