"""Streaming, proven by memory rather than timing: encrypting and decrypting 64 MiB in a fresh
process grows its peak RSS by a small constant, far below the file size."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

SIZE = 64 * 1024 * 1024

PROBE = """
import json, os, resource, sys
from mlsec.crypt import Passphrase, decrypt_file, encrypt_file, generate_identity, parse_identities

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

d = sys.argv[1]
plain, enc, out = (os.path.join(d, n) for n in ("plain", "plain.age", "out"))
with open(plain, "wb") as f:
    f.truncate(int(sys.argv[2]))  # sparse: costs no memory to make
identity, recipient = generate_identity()
ids = parse_identities(identity)
warm = os.path.join(d, "warm")
with open(warm, "wb") as f:
    f.write(os.urandom(300_000))
encrypt_file(warm, warm + ".age", [recipient])
decrypt_file(warm + ".age", warm + ".out", ids)
base = peak()
encrypt_file(plain, enc, [recipient])
after_encrypt = peak()
n = decrypt_file(enc, out, ids)
after_decrypt = peak()
print(json.dumps({"base": base, "encrypt": after_encrypt, "decrypt": after_decrypt, "n": n,
                  "enc_size": os.path.getsize(enc)}))
"""


@pytest.mark.slow
def test_memory_does_not_grow_with_file_size(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path), str(SIZE)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["n"] == SIZE
    assert r["enc_size"] > SIZE  # the whole file really went through
    limit = 8 * 1024 * 1024  # a few 64 KiB buffers and the 1 MiB I/O buffers, nothing more
    assert r["encrypt"] - r["base"] < limit, r
    assert r["decrypt"] - r["base"] < limit, r
    with open(tmp_path / "out", "rb") as f:
        assert f.read(1 << 20) == bytes(1 << 20)
