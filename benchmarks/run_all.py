"""Every performance goal of issue 10 in one run: each goal's measured ratio, and peak RSS.

    python benchmarks/run_all.py [--quick] [--runs N] [--only hash,sign,scan,startup,crypt,pull]
                                 [--workdir DIR] [--keep]

Goals (from the issue; ratios are mlsec / reference, so lower is better, except "x faster"):

* hash    ``mlsec inspect -f json`` <= 1.1x the SHA-256 floor (``openssl dgst -sha256``, one
          process per core, files balanced by size) for 4 x 512 MiB files and ~1,200 mixed files
* sign    ``mlsec sign --key`` and ``mlsec verify --key`` <= 1.1x that floor, and sign >= 1.3x
          faster than ``model_signing sign key`` on the same model
* scan    ``mlsec scan`` <= 1.0x picklescan on each ``bench_scan.py`` case (1.75 GiB checkpoint,
          20,000-tensor checkpoint, 20 small checkpoints) — needs ``pip install picklescan``
* startup ``mlsec -q scan small.pkl`` <= 0.06 s, ``mlsec --version`` <= 0.05 s (``python -c pass``
          shown for scale)
* crypt   ``mlsec encrypt`` / ``decrypt`` <= 1.0x ``age`` on 1 GiB (X25519)
* pull    verified ``mlsec pull`` <= 1.3x ``curl`` GET of the same blobs 4 at a time from a local
          ``docker-registry``, peak RSS < 100 MB

Each command runs in its own process under GNU time (``/usr/bin/time``) for user/sys CPU and peak
RSS; commands of one goal are interleaved run by run, so that noise from a shared machine hits
all alike, and the medians are compared. Both the wall-clock ratio and the CPU (user+sys) ratio are
printed: on a busy machine CPU time is the steadier of the two. ``--quick`` uses small sizes (a
smoke run, not figures). Inputs are built in a temp dir (warm page cache) and deleted unless
``--keep``. Not a test.
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

MIB = 1024 * 1024
ENV = dict(os.environ, PYTHONPATH=str(REPO), CI="1", PROMPTFOO_DISABLE_TELEMETRY="1")
ENV.pop("MLSEC_NO_MMAP", None)
MLSEC = [sys.executable, "-m", "mlsec"]
CORES = os.cpu_count() or 1
# The hashing itself, without the CLI's start-up (the interpreter's is still in it).
LIBRARY_HASH = (
    "import sys; from mlsec.artifact import open_artifact; open_artifact(sys.argv[1], digests=True)"
)


@dataclass(frozen=True)
class Sample:
    wall: float
    user: float
    sys: float
    rss: int  # bytes

    @property
    def cpu(self) -> float:
        return self.user + self.sys


def measure(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Sample:
    """One run under GNU time. (wait4 here would report this script's own peak RSS as a floor:
    a child inherits the high-water mark across exec; GNU time is small.)"""
    with tempfile.NamedTemporaryFile(prefix="rss-", suffix=".txt") as out:
        t0 = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%U %S %M", "-o", out.name, *argv],
            env=env or ENV,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=3600,
        )
        wall = time.perf_counter() - t0
        if proc.returncode not in (0, 1):  # 1: findings (a scanner's verdict), still a run
            err = proc.stderr.decode(errors="replace")[-1500:]
            raise SystemExit(f"{' '.join(argv[:5])} failed ({proc.returncode}): {err}")
        user, system, kib = Path(out.name).read_text().split()[-3:]
    return Sample(wall, float(user), float(system), int(kib) * 1024)


@dataclass
class Row:
    goal: str
    ours: str
    ref: str
    samples: dict[str, list[Sample]]
    target: float  # ratio ours/ref must be <= target; with faster=True ref/ours must be >= it
    faster: bool = False
    absolute: bool = False  # target is seconds of ``ours`` (start-up), ref only for scale
    rss_limit: int | None = None


ROWS: list[Row] = []


def med(xs: list[Sample], key: Callable[[Sample], float]) -> float:
    return statistics.median(key(x) for x in xs)


def interleave(
    cmds: dict[str, tuple[list[str], Path | None]], runs: int
) -> dict[str, list[Sample]]:
    """Run each command ``runs`` times, round-robin, after one untimed warm-up run each."""
    out: dict[str, list[Sample]] = {name: [] for name in cmds}
    for argv, cwd in cmds.values():
        measure(argv, cwd=cwd)
    for _ in range(runs):
        for name, (argv, cwd) in cmds.items():
            out[name].append(measure(argv, cwd=cwd))
    return out


def warm(paths: list[Path]) -> None:
    for p in paths:
        with open(p, "rb") as f:
            while f.read(16 * MIB):
                pass


def files_of(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def floor_cmd(files: list[Path]) -> list[str]:
    """``openssl dgst -sha256`` on every core, the files dealt out by size (largest first)."""
    groups: list[list[str]] = [[] for _ in range(CORES)]
    loads = [0] * CORES
    for f in sorted(files, key=lambda p: -p.stat().st_size):
        i = loads.index(min(loads))
        groups[i].append(str(f))
        loads[i] += f.stat().st_size
    script = " ".join(
        "openssl dgst -sha256 " + " ".join(f"'{p}'" for p in g) + " >/dev/null &"
        for g in groups
        if g
    )
    return ["bash", "-c", script + " wait"]


def write_big(root: Path, n: int, mib: int) -> None:
    root.mkdir(parents=True)
    block = os.urandom(64 * MIB)
    for i in range(n):
        with open(root / f"model-{i:05d}-of-{n:05d}.safetensors", "wb") as f:
            left = mib * MIB
            while left > 0:
                f.write(block[: min(left, len(block))])
                left -= len(block)


def write_mixed(root: Path, n: int) -> None:
    """~``n`` files from 1 KiB to 8 MiB, log-spread, in a few subdirectories (a checkpoint
    directory with optimizer shards, tokenizer files and logs)."""
    root.mkdir(parents=True)
    sizes = [1024, 8 * 1024, 64 * 1024, 300 * 1024, MIB, 3 * MIB, 8 * MIB]
    block = os.urandom(8 * MIB)
    for i in range(n):
        d = root / f"part{i % 8}"
        d.mkdir(exist_ok=True)
        size = sizes[i % len(sizes)] + i
        (d / f"f{i:05d}.bin").write_bytes(block[: size - 16] + i.to_bytes(16, "little"))


# --- goals -------------------------------------------------------------------------------------


def goal_hash(work: Path, quick: bool, runs: int) -> None:
    big, mixed = work / "big", work / "mixed"
    write_big(big, 4, 64 if quick else 512)
    write_mixed(mixed, 200 if quick else 1200)
    for name, root in (("4 x 512 MiB" if not quick else "4 x 64 MiB", big), ("mixed", mixed)):
        files = files_of(root)
        warm(files)
        size = sum(f.stat().st_size for f in files)
        label = f"hash {name} ({len(files)} files, {size / MIB:.0f} MiB)"
        s = interleave(
            {
                "floor": (floor_cmd(files), None),
                "mlsec inspect -f json": ([*MLSEC, "-q", "inspect", "-f", "json", str(root)], work),
                "library": ([sys.executable, "-c", LIBRARY_HASH, str(root)], work),
            },
            runs,
        )
        ROWS.append(Row(label, "mlsec inspect -f json", "floor", s, 1.1))
        ROWS.append(Row("  the same, library call (no CLI)", "library", "floor", s, 1.1))
    shutil.rmtree(mixed)  # the big model stays for goal_sign


def goal_sign(work: Path, quick: bool, runs: int) -> None:
    big = work / "big"
    if not big.is_dir():
        write_big(big, 4, 64 if quick else 512)
    warm(files_of(big))
    key = work / "k"
    subprocess.run(
        [*MLSEC, "keygen", "-o", str(key), "--no-passphrase", "--force"],
        env=ENV,
        check=True,
        capture_output=True,
    )
    files = files_of(big)
    sig, msig = work / "mlsec.sig", work / "ms.sig"
    cmds: dict[str, tuple[list[str], Path | None]] = {
        "floor": (floor_cmd(files), None),
        "mlsec sign": (
            [*MLSEC, "-q", "sign", str(big), "--key", f"{key}.key", "-o", str(sig)],
            work,
        ),
        "mlsec verify": (
            [*MLSEC, "-q", "verify", str(big), "-s", str(sig), "--key", f"{key}.pub"],
            work,
        ),
    }
    ms = shutil.which("model_signing")
    if ms:
        cmds["model_signing sign key"] = (
            [ms, "sign", "key", "--private_key", f"{key}.key", "--signature", str(msig), str(big)],
            work,
        )
    subprocess.run(cmds["mlsec sign"][0], env=ENV, cwd=work, check=True, capture_output=True)
    s = interleave(cmds, runs)
    size = sum(f.stat().st_size for f in files)
    what = f"({len(files)} files, {size / MIB:.0f} MiB)"
    ROWS.append(Row(f"sign {what}", "mlsec sign", "floor", s, 1.1))
    ROWS.append(Row(f"verify {what}", "mlsec verify", "floor", s, 1.1))
    if ms:
        ROWS.append(
            Row("sign vs model_signing", "mlsec sign", "model_signing sign key", s, 1.3, True)
        )
    shutil.rmtree(big)


def goal_scan(work: Path, quick: bool, runs: int) -> None:
    import bench_scan as bs

    if not shutil.which("picklescan"):
        print("scan: picklescan not installed (pip install picklescan): skipped", file=sys.stderr)
        return
    cases = {
        "big": bs.build_big(work, 0.25 if quick else 1.75),
        "many": bs.build_many(work, 20_000),
        "dir": bs.build_dir(work, 20),
    }
    for name, path in cases.items():
        bs.warm(path)
        s = interleave(
            {
                "picklescan": (["picklescan", "-p", str(path)], work),
                "mlsec scan": ([*MLSEC, "-q", "scan", "-f", "json", str(path)], work),
            },
            runs,
        )
        ROWS.append(Row(f"scan {name}", "mlsec scan", "picklescan", s, 1.0))
    for path in cases.values():
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def goal_startup(work: Path, quick: bool, runs: int) -> None:
    import pickle

    small = work / "small.pkl"
    small.write_bytes(pickle.dumps({"weights": [0.5] * 100, "step": 3}))
    n = max(runs, 10)
    s = interleave(
        {
            "python -c pass": ([sys.executable, "-c", "pass"], work),
            "mlsec -q scan small.pkl": ([*MLSEC, "-q", "scan", str(small)], work),
            "mlsec --version": ([*MLSEC, "--version"], work),
        },
        n,
    )
    ROWS.append(
        Row(
            "start-up: scan small.pkl",
            "mlsec -q scan small.pkl",
            "python -c pass",
            s,
            0.06,
            absolute=True,
        )
    )
    ROWS.append(
        Row("start-up: --version", "mlsec --version", "python -c pass", s, 0.05, absolute=True)
    )


def goal_crypt(work: Path, quick: bool, runs: int) -> None:
    if not shutil.which("age") or not shutil.which("age-keygen"):
        print("crypt: age not installed: skipped", file=sys.stderr)
        return
    import bench_crypt as bc

    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    base = Path(tempfile.mkdtemp(prefix="mlsec-run-all-crypt-", dir=shm))
    try:
        mib = 128 if quick else 1024
        plain, key = base / "model.bin", base / "key.txt"
        bc.build(plain, mib)
        warm([plain])
        subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
        rcpt = subprocess.run(
            ["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True
        ).stdout.strip()
        a_enc, m_enc, a_dec, m_dec = (base / n for n in ("a.age", "m.age", "a.out", "m.out"))
        subprocess.run(["age", "-r", rcpt, "-o", str(a_enc), str(plain)], check=True)
        cmds: dict[str, tuple[list[str], Path | None]] = {
            "age encrypt": (["age", "-r", rcpt, "-o", str(a_enc), str(plain)], base),
            "mlsec encrypt": (
                [*MLSEC, "-q", "encrypt", str(plain), "-r", rcpt, "-o", str(m_enc), "--force"],
                base,
            ),
            "age decrypt": (["age", "-d", "-i", str(key), "-o", str(a_dec), str(a_enc)], base),
            "mlsec decrypt": (
                [*MLSEC, "-q", "decrypt", str(a_enc), "-i", str(key), "-o", str(m_dec), "--force"],
                base,
            ),
        }
        writes = {"age encrypt": a_enc, "mlsec encrypt": m_enc, "age decrypt": a_dec}
        writes["mlsec decrypt"] = m_dec
        out: dict[str, list[Sample]] = {n: [] for n in cmds}
        for _ in range(runs):
            for name, (argv, cwd) in cmds.items():
                writes[name].unlink(missing_ok=True)  # each tool creates a fresh output
                out[name].append(measure(argv, cwd=cwd))
        label = f"{mib} MiB"
        ROWS.append(Row(f"encrypt {label}", "mlsec encrypt", "age encrypt", out, 1.0))
        ROWS.append(Row(f"decrypt {label}", "mlsec decrypt", "age decrypt", out, 1.0))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def goal_pull(work: Path, quick: bool, runs: int) -> None:
    if not shutil.which("docker-registry"):
        print("pull: docker-registry not installed: skipped", file=sys.stderr)
        return
    import bench_registry as br

    from mlsec.artifact import open_artifact
    from tests.registry_server import start_registry

    model = work / "pull-model"
    mib = 128 if quick else 1024
    br.build(model, mib)
    reg = start_registry(work / "registry")
    try:
        listing = work / "blobs.txt"
        art = open_artifact(model, digests=True)
        listing.write_text("".join(f"sha256:{f.sha256} {f.source}\n" for f in art.files))
        ref = f"{reg.host}/bench/run-all:v1"
        subprocess.run([*MLSEC, "-q", "push", str(model), ref], env=ENV, check=True, cwd=work)
        curl_env = dict(ENV, HOST=reg.host, REPO="bench/curl", LIST=str(listing))
        subprocess.run(["bash", "-c", br.CURL_PUSH], env=curl_env, check=True)
        out: dict[str, list[Sample]] = {"curl GET x4": [], "mlsec pull (verified)": []}
        for i in range(runs + 1):  # the first round warms the registry's storage
            dest = work / f"out-curl-{i}"
            dest.mkdir()
            s = measure(["bash", "-c", br.CURL_PULL], dict(curl_env, OUT=str(dest)))
            shutil.rmtree(dest)
            dest = work / f"out-mlsec-{i}"
            m = measure([*MLSEC, "-q", "pull", ref, str(dest)], cwd=work)
            shutil.rmtree(dest)
            if i:
                out["curl GET x4"].append(s)
                out["mlsec pull (verified)"].append(m)
        ROWS.append(
            Row(
                f"pull {mib} MiB",
                "mlsec pull (verified)",
                "curl GET x4",
                out,
                1.3,
                rss_limit=100 * 10**6,
            )
        )
    finally:
        reg.stop()
        shutil.rmtree(model, ignore_errors=True)


GOALS: dict[str, Callable[[Path, bool, int], None]] = {
    "startup": goal_startup,
    "hash": goal_hash,
    "sign": goal_sign,
    "scan": goal_scan,
    "crypt": goal_crypt,
    "pull": goal_pull,
}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def report() -> None:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    sha = "SHA-NI" if " sha_ni" in flags else "no SHA-NI"
    print(f"\nmlsec from {ENV['PYTHONPATH']}")
    print(f"{cpu_name()}, {CORES} cores ({sha}); load average {os.getloadavg()[0]:.1f}")
    print("medians; ratio = mlsec / reference (start-up: seconds); RSS = peak of any run\n")
    head = (
        f"{'goal':<38} {'reference':>10} {'mlsec':>8} {'ratio':>6} {'CPU ratio':>9} {'target':>8}"
    )
    print(head + f" {'RSS ref':>8} {'RSS mlsec':>9}  met")
    for r in ROWS:
        ours, ref = r.samples[r.ours], r.samples[r.ref]
        w_o, w_r = med(ours, lambda s: s.wall), med(ref, lambda s: s.wall)
        c_o, c_r = med(ours, lambda s: s.cpu), med(ref, lambda s: s.cpu)
        rss_o = max(s.rss for s in ours) / MIB
        rss_r = max(s.rss for s in ref) / MIB
        if r.absolute:
            ratio, cpu_ratio = w_o, c_o
            met = w_o <= r.target
            tgt = f"<={r.target:.2f}s"
        elif r.faster:
            ratio, cpu_ratio = w_r / w_o, c_r / c_o
            met = ratio >= r.target
            tgt = f">={r.target:.1f}x"
        else:
            ratio, cpu_ratio = w_o / w_r, c_o / c_r
            met = ratio <= r.target
            tgt = f"<={r.target:.1f}x"
        if r.rss_limit is not None:
            met = met and max(s.rss for s in ours) < r.rss_limit
        print(
            f"{r.goal:<38} {w_r:9.3f}s {w_o:7.3f}s {ratio:6.2f} {cpu_ratio:9.2f} {tgt:>8} "
            f"{rss_r:6.0f}Mi {rss_o:7.0f}Mi  {'yes' if met else 'NO'}"
        )
    print("\n(CPU ratio: user+sys of mlsec / of the reference; for start-up rows, mlsec's CPU s)")


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    ap.add_argument("--runs", type=int, default=None, help="runs per command (default 5; quick 3)")
    ap.add_argument("--only", default=",".join(GOALS), help="comma-separated goals")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument(
        "--repo",
        type=Path,
        default=None,
        help="measure the mlsec of this checkout (e.g. an export of main: before/after)",
    )
    args = ap.parse_args()
    if args.repo is not None:
        ENV["PYTHONPATH"] = str(args.repo.resolve())
    # What an install does: byte-compile the package, so that start-up is not spent compiling
    # (PYTHONDONTWRITEBYTECODE, set on some machines, would make every run compile every module).
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(ENV["PYTHONPATH"]) / "mlsec")],
        check=True,
    )
    if not Path("/usr/bin/time").exists():
        raise SystemExit("needs GNU time (/usr/bin/time, Debian package `time`)")
    runs = args.runs or (3 if args.quick else 5)
    work = Path(tempfile.mkdtemp(prefix="mlsec-run-all-", dir=args.workdir))
    try:
        for name in args.only.split(","):
            print(f"== {name} ...", file=sys.stderr)
            GOALS[name](work, args.quick, runs)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
