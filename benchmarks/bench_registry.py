#!/usr/bin/env python3
"""Benchmark: ``mlsec push`` / ``mlsec pull`` against a local docker-registry, vs oras-py.

Builds a ~1 GiB flat model directory (four large shards and a few small files: oras-py names
layers by basename, so the layout is flat to compare like with like), starts Debian's
``docker-registry`` on 127.0.0.1 with filesystem storage in a temp dir, then measures in one run:

* floors: ``cp -r`` of the directory (writing the bytes once), and ``curl`` uploading /
  downloading the same blobs with the bare API, 4 at a time (POST + PUT per blob, digests
  precomputed outside the timing; GET per blob without any check) — what the registry costs;
* ``mlsec push`` (to a fresh repository each time, so every blob is uploaded) and ``mlsec pull``
  (every blob hashed and verified while it streams);
* ``oras-py`` push (default: whole blob in memory; and ``do_chunked=True``) and pull, when an
  interpreter with the ``oras`` package is given (``--oras-python``; ``pip install oras`` in a
  venv — it is not a dependency of mlsec).

Every row is the median of ``--repeat`` runs, each in its own process; peak RSS comes from
GNU ``time`` (``/usr/bin/time``, Debian package ``time``). Warm page cache. Not a test: run it
by hand, ``python benchmarks/bench_registry.py [--oras-python /path/to/venv/bin/python]``.
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

from tests.registry_server import start_registry  # noqa: E402

MIB = 1024 * 1024

MLSEC = (
    "import sys\n"
    "from mlsec.cli import app as a, registry as r\n"
    "if 'push' not in [c.name for c in a.app.registered_commands]: r.register(a.app)\n"
    "sys.exit(a.run(sys.argv[1:]))\n"
)
ORAS = (
    "import os, sys\n"
    "import oras.client\n"
    "op, host, target, path, chunked = sys.argv[1:6]\n"
    "c = oras.client.OrasClient(hostname=host, insecure=True)\n"
    "if op == 'push':\n"
    "    os.chdir(path)\n"
    "    c.push(target=target, files=sorted(os.listdir('.')), do_chunked=chunked == '1',\n"
    "           chunk_size=64 * 1024 * 1024, quiet=True)\n"
    "else:\n"
    "    c.pull(target=target, outdir=path)\n"
)


# One blob per line ("DIGEST FILE"), 4 at a time like mlsec's default: the floor is the registry
# itself, fed by the leanest client there is.
CURL_PUSH = """set -e
up() {
  loc=$(curl -sf -X POST -D - -o /dev/null "http://$HOST/v2/$REPO/blobs/uploads/" \\
        | tr -d '\\r' | sed -n 's/^[Ll]ocation: //p')
  case "$loc" in *\\?*) sep='&';; *) sep='?';; esac
  curl -sf -X PUT -H 'Content-Type: application/octet-stream' -T "$2" \\
       "$loc${sep}digest=$1" -o /dev/null
}
export -f up
xargs -P 4 -L 1 bash -c 'up "$0" "$1"' < "$LIST"
"""
CURL_PULL = """set -e
xargs -P 4 -L 1 bash -c 'curl -sf "http://$HOST/v2/$REPO/blobs/$0" -o "$OUT/${0#sha256:}"' \\
  < "$LIST"
"""


def build(root: Path, size_mib: int) -> int:
    root.mkdir(parents=True)
    shards = 4
    per = size_mib // shards
    block = os.urandom(8 * MIB)
    total = 0
    for i in range(shards):
        with open(root / f"model-{i:05d}-of-{shards:05d}.safetensors", "wb") as f:
            for j in range(per // 8):
                f.write(j.to_bytes(8, "little") + i.to_bytes(8, "little") + block[16:])
        total += per * MIB
    for name, size in (("config.json", 700), ("tokenizer.json", 2 * MIB), ("vocab.txt", 230_000)):
        (root / name).write_bytes(os.urandom(size))
        total += size
    return total


def run(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one command; fails loudly.

    Peak RSS comes from GNU time (``%M``): a child of this process would inherit its high-water
    mark across exec, so ``wait4`` here would report this script's own size as a floor.
    """
    with tempfile.NamedTemporaryFile(prefix="rss-", suffix=".txt") as rss:
        t0 = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", rss.name, *argv],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace")[-2000:]
            raise SystemExit(f"{argv[:4]} failed ({proc.returncode}): {err}")
        kib = int(Path(rss.name).read_text().split()[-1])
    return elapsed, kib * 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--oras-python", default=os.environ.get("ORAS_PYTHON", "/tmp/oras-venv/bin/python")
    )
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-registry-", dir=args.workdir))
    model = work / "model"
    total = build(model, args.size_mib)
    reg = start_registry(work / "registry")
    env = dict(os.environ, PYTHONPATH=str(REPO), CI="1")
    have_oras = (
        Path(args.oras_python).exists()
        and subprocess.run(
            [args.oras_python, "-c", "import oras.client"], capture_output=True
        ).returncode
        == 0
    )
    rows: dict[str, list[tuple[float, int]]] = {}
    from mlsec.artifact import open_artifact

    listing = work / "blobs.txt"
    listing.write_text(
        "".join(f"sha256:{f.sha256} {f.source}\n" for f in open_artifact(model, digests=True).files)
    )

    def record(name: str, result: tuple[float, int]) -> None:
        rows.setdefault(name, []).append(result)

    try:
        for i in range(args.repeat):
            out = work / f"out-{i}"
            record("floor: cp -r (write the bytes once)", run(["cp", "-r", str(model), str(out)]))
            shutil.rmtree(out)

            curl_env = dict(os.environ, HOST=reg.host, REPO=f"bench/curl-{i}", LIST=str(listing))
            record("floor: curl POST+PUT, 4 at a time", run(["bash", "-c", CURL_PUSH], curl_env))
            out.mkdir()
            record(
                "floor: curl GET, 4 at a time",
                run(["bash", "-c", CURL_PULL], dict(curl_env, OUT=str(out))),
            )
            shutil.rmtree(out)

            ref = f"{reg.host}/bench/mlsec-{i}:v1"
            record("mlsec push", run([sys.executable, "-c", MLSEC, "push", str(model), ref], env))
            record(
                "mlsec pull (verified)",
                run([sys.executable, "-c", MLSEC, "pull", ref, str(out)], env),
            )
            shutil.rmtree(out)

            if have_oras:
                for chunked in ("0", "1"):
                    target = f"{reg.host}/bench/oras-{chunked}-{i}:v1"
                    label = "oras-py push" + (" (do_chunked)" if chunked == "1" else " (default)")
                    record(
                        label,
                        run(
                            [
                                args.oras_python,
                                "-c",
                                ORAS,
                                "push",
                                reg.host,
                                target,
                                str(model),
                                chunked,
                            ]
                        ),
                    )
                out.mkdir()
                target = f"{reg.host}/bench/oras-0-{i}:v1"
                record(
                    "oras-py pull (no digest check)",
                    run([args.oras_python, "-c", ORAS, "pull", reg.host, target, str(out), "0"]),
                )
                shutil.rmtree(out)
    finally:
        reg.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print(
        f"\nmodel: {total / MIB:.0f} MiB in {len(list(model.parent.glob('model/*'))) or 7} files; "
        f"{args.repeat} runs each, medians; cpus={os.cpu_count()}"
    )
    if not have_oras:
        print(f"(oras-py not found at {args.oras_python}: peer rows skipped)")
    print(f"{'':40} {'seconds':>8} {'MiB/s':>8} {'peak RSS MiB':>13}")
    for name, results in rows.items():
        secs = statistics.median(r[0] for r in results)
        rss = statistics.median(r[1] for r in results)
        print(f"{name:40} {secs:8.2f} {total / MIB / secs:8.0f} {rss / MIB:13.0f}")


if __name__ == "__main__":
    main()
