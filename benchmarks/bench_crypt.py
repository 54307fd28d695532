#!/usr/bin/env python3
"""Benchmark: mlsec encrypt/decrypt (age v1) against the `age` CLI on one large file.

Builds a random file (1 GiB by default), then measures in one run, each the median of
``--repeat`` runs with a warm page cache:

* ``age -r`` / ``age -d -i`` (Debian's age, Go);
* ``mlsec encrypt -r`` / ``mlsec decrypt -i`` (the CLI end to end, start-up included);
* the AEAD floor: the same 64 KiB ChaCha20-Poly1305 chunks sealed in memory by `cryptography`,
  with no I/O and no format work — what any Python implementation on this library can reach.

Reports wall seconds, MiB/s, CPU seconds and peak RSS per process (from ``wait4``). Outputs go to
the same directory as the input, are checked for a correct round trip, and everything is
deleted at the end unless ``--keep``. Not a test: run it by hand,
``python benchmarks/bench_crypt.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024

# The CLI entry point, registering the crypt commands if app.py does not (yet).
LAUNCH = (
    "import sys\n"
    "from mlsec.cli import app as a, crypt\n"
    "if 'encrypt' not in {c.name for c in a.app.registered_commands}: crypt.register(a.app)\n"
    "sys.exit(a.run(sys.argv[1:]))\n"
)


def build(path: Path, mib: int) -> None:
    block = os.urandom(8 * MIB)
    with open(path, "wb") as f:
        for j in range(mib // 8):
            f.write(j.to_bytes(8, "little") + block[8:])


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(16 * MIB):
            h.update(chunk)
    return h.hexdigest()


def run(argv: list[str], env: dict[str, str], rss_file: Path) -> tuple[float, float, float, int]:
    """Wall seconds, user and system CPU seconds, and peak RSS (bytes) of one process.

    The peak RSS comes from GNU time (``/usr/bin/time -f %M``): ``wait4`` on a child of this
    (large) Python process would report this process's RSS, inherited across fork.
    """
    timer = ["/usr/bin/time", "-f", "%M %U %S", "-o", str(rss_file)]
    t = time.perf_counter()
    proc = subprocess.run([*timer, *argv], env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{proc.stderr}")
    rss_kib, user, system = rss_file.read_text().split()[-3:]
    return wall, float(user), float(system), int(rss_kib) * 1024


def aead_floor(mib: int, repeat: int) -> float:
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    chunk = os.urandom(64 * 1024)
    out = bytearray(len(chunk) + 16)
    seal = ChaCha20Poly1305(os.urandom(32)).encrypt_into
    nonce = bytes(12)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(mib * 16):
            seal(nonce, chunk, None, out)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="Where to build (default: a temp dir in /dev/shm when it exists, so that the disk's "
        "writeback does not dominate; mlsec fsyncs its output, age does not).",
    )
    ap.add_argument("--mib", type=int, default=1024, help="Size of the input file in MiB.")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if not shutil.which("age") or not shutil.which("age-keygen"):
        raise SystemExit("needs the age CLI (Debian package `age`)")
    if not Path("/usr/bin/time").exists():
        raise SystemExit("needs GNU time (/usr/bin/time, Debian package `time`) for peak RSS")

    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    base = args.dir or Path(tempfile.mkdtemp(prefix="mlsec-bench-crypt-", dir=shm))
    base.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(REPO), CI="1")
    mlsec = [sys.executable, "-c", LAUNCH]
    plain = base / "model.bin"
    key = base / "key.txt"
    rows: dict[str, list[tuple[float, float, float, int]]] = {}
    try:
        print(f"building {plain} ({args.mib} MiB) ...", file=sys.stderr)
        build(plain, args.mib)
        digest = sha256(plain)  # also warms the page cache
        subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
        recipient = subprocess.run(
            ["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True
        ).stdout.strip()
        age_enc, ml_enc = base / "age.age", base / "mlsec.age"
        age_dec, ml_dec = base / "age.out", base / "mlsec.out"
        outputs = {
            "age encrypt": age_enc,
            "mlsec encrypt": ml_enc,
            "age decrypt": age_dec,
            "mlsec decrypt": ml_dec,
        }
        cmds = {
            "age encrypt": ["age", "-r", recipient, "-o", str(age_enc), str(plain)],
            "mlsec encrypt": [
                *mlsec,
                "encrypt",
                str(plain),
                "-r",
                recipient,
                "-o",
                str(ml_enc),
                "--force",
            ],
            # each decrypts the other's file: interop is part of the measurement
            "age decrypt": ["age", "-d", "-i", str(key), "-o", str(age_dec), str(ml_enc)],
            "mlsec decrypt": [
                *mlsec,
                "decrypt",
                str(age_enc),
                "-i",
                str(key),
                "-o",
                str(ml_dec),
                "--force",
            ],
        }
        # Interleave the tools run by run so that noise from the machine hits both alike.
        for i in range(args.repeat):
            for name, argv in cmds.items():
                # Both tools create a fresh output (freeing the old one is not timed).
                outputs[name].unlink(missing_ok=True)
                rows.setdefault(name, []).append(run(argv, env, base / "time.txt"))
            print(f"run {i + 1}/{args.repeat} done", file=sys.stderr)
        for out in (age_dec, ml_dec):
            if sha256(out) != digest:
                raise SystemExit(f"{out}: round trip differs from the input")
        floor = aead_floor(args.mib, args.repeat)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)

    print(f"\n{args.mib} MiB, {os.cpu_count()} cores; median of {args.repeat}; warm page cache")
    print(f"{'what':<40} {'wall s':>7} {'MiB/s':>7} {'user s':>7} {'sys s':>6} {'peak RSS':>9}")
    print(f"{'AEAD floor (64 KiB chunks, in memory)':<40} {floor:7.2f} {args.mib / floor:7.0f}")
    med: dict[str, float] = {}
    for name, samples in rows.items():
        wall = statistics.median(s[0] for s in samples)
        user = statistics.median(s[1] for s in samples)
        system = statistics.median(s[2] for s in samples)
        rss = max(s[3] for s in samples)
        med[name] = wall
        print(
            f"{name:<40} {wall:7.2f} {args.mib / wall:7.0f} {user:7.2f} {system:6.2f} "
            f"{rss / MIB:5.0f} MiB"
        )
    print(
        f"\nmlsec vs age (wall, >1 = mlsec faster): encrypt "
        f"{med['age encrypt'] / med['mlsec encrypt']:.2f}x, decrypt "
        f"{med['age decrypt'] / med['mlsec decrypt']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
