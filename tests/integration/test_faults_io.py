# ruff: noqa: F811 - the null_device fixture is imported from tests/unit/test_ioutil.py
"""A hostile environment around the files a user names: outputs that are devices, FIFOs,
symlinks or directories; inputs that never end; SIGTERM / SIGHUP in the middle of a run.

Every run here is the real CLI in a subprocess. Inputs that must keep a command busy are FIFOs
made in tmp_path: the test writes to them, and a write of more than the pipe buffer returns only
once the command has read it, so the signal arrives while the command is working (no sleeps).
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mlsec.crypt import generate_identity
from tests.conftest import REPO, run_mlsec
from tests.unit.test_ioutil import null_device  # noqa: F401 - a pytest fixture

CHUNK = 1 << 20


def _env(tmp_path: Path) -> dict[str, str]:
    tmpdir = tmp_path / "TMPDIR"
    tmpdir.mkdir(exist_ok=True)
    return dict(os.environ, PYTHONPATH=str(REPO), CI="1", TMPDIR=str(tmpdir), MLSEC_PASSPHRASE="")


def _start(tmp_path: Path, *args: str | os.PathLike[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mlsec", *map(str, args)],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _keys(tmp_path: Path) -> tuple[Path, str]:
    identity, recipient = generate_identity()
    key = tmp_path / "key.txt"
    key.write_text(identity + "\n")
    return key, recipient


def _one_error(proc: subprocess.CompletedProcess[str], text: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[0].startswith("mlsec: error: ") and text in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def _leftovers(*dirs: Path) -> list[str]:
    return sorted(str(p) for d in dirs for p in d.rglob("*"))


# --- outputs -------------------------------------------------------------------------------


def test_a_device_as_output_stays_a_device(tmp_path: Path, null_device: Path) -> None:
    _, recipient = _keys(tmp_path)
    src = tmp_path / "m.bin"
    src.write_bytes(os.urandom(1000))
    r = run_mlsec("encrypt", src, "-r", recipient, "-o", null_device, env=_env(tmp_path))
    assert r.returncode == 0, r.stderr
    r = run_mlsec("age-keygen", "-o", null_device, env=_env(tmp_path))
    assert r.returncode == 0, r.stderr  # a device is not "an existing file": no --force needed
    assert stat.S_ISCHR(os.lstat(null_device).st_mode)


def test_fifo_output_is_written_in_place(tmp_path: Path) -> None:
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    r = run_mlsec("age-keygen", "-o", fifo, env=_env(tmp_path))
    reader.join(timeout=60)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # not replaced by a regular file
    assert b"AGE-SECRET-KEY-1" in got[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["TMPDIR", "out.fifo"]


def test_keygen_into_a_directory_is_refused(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    r = run_mlsec("keygen", "-o", f"{keys}/", "--no-passphrase", env=_env(tmp_path))
    _one_error(r, "is a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["TMPDIR", "keys"]
    assert not list(keys.iterdir())


def test_keygen_next_to_a_device_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "signer"
    os.mkfifo(fifo)
    r = run_mlsec("keygen", "-o", fifo, "--no-passphrase", env=_env(tmp_path))
    _one_error(r, "not a regular file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["TMPDIR", "signer"]


def test_output_into_a_directory_or_dangling_symlink_is_refused(tmp_path: Path) -> None:
    _, recipient = _keys(tmp_path)
    src = tmp_path / "m.bin"
    src.write_bytes(b"x" * 100)
    (tmp_path / "dir").mkdir()
    r = run_mlsec("encrypt", src, "-r", recipient, "-o", tmp_path / "dir", env=_env(tmp_path))
    _one_error(r, "is a directory")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    r = run_mlsec("age-keygen", "-o", tmp_path / "dangling", env=_env(tmp_path))
    _one_error(r, "dangling symlink")
    assert not (tmp_path / "nowhere").exists()


def test_symlink_to_a_regular_file_is_followed(tmp_path: Path) -> None:
    real = tmp_path / "real.key"
    real.write_text("old\n")
    link = tmp_path / "link.key"
    link.symlink_to(real)
    r = run_mlsec("age-keygen", "-o", link, "--force", env=_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and "AGE-SECRET-KEY-1" in real.read_text()
    assert stat.S_IMODE(real.stat().st_mode) == 0o600


# --- bounded reads -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("age-keygen", "-y", "/dev/zero"),
        ("decrypt", "{enc}", "-i", "/dev/zero", "-o", "{out}"),
        ("encrypt", "{src}", "-R", "/dev/zero", "-o", "{out}"),
        ("encrypt", "{src}", "--passphrase-file", "/dev/zero", "-o", "{out}"),
        ("sign", "{src}", "--key", "/dev/zero", "-o", "{out}"),
        ("verify", "{src}", "--key", "/dev/zero", "--signature", "{enc}"),
        ("verify", "{src}", "--key", "{pub}", "--signature", "/dev/zero"),
        ("admit", "{src}", "--policy", "/dev/zero"),
        ("sbom", "{src}", "--requirements", "/dev/zero", "-o", "{out}"),
        ("verify", "{src}", "--certificate-chain", "/dev/zero", "--signature", "{enc}"),
    ],
    ids=[
        "age-keygen-y",
        "identity",
        "recipients",
        "passphrase-file",
        "signing-key",
        "public-key",
        "signature",
        "admit-policy",
        "requirements",
        "certificate-chain",
    ],
)
def test_dev_zero_as_a_small_input_is_refused_quickly(tmp_path: Path, args: tuple[str]) -> None:
    src = tmp_path / "m.bin"
    src.write_bytes(b"x" * 100)
    enc = tmp_path / "m.bin.age"
    enc.write_bytes(b"age-encryption.org/v1\n")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pub = tmp_path / "key.pub"
    pub.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    fill = {"src": src, "enc": enc, "out": tmp_path / "out", "pub": pub}
    r = run_mlsec(*(a.format(**fill) for a in args), env=_env(tmp_path), timeout=60)
    _one_error(r, "larger than")
    assert "/dev/zero: " in r.stderr
    assert not (tmp_path / "out").exists()


def test_dev_zero_as_admit_signature_is_bounded_evidence(tmp_path: Path) -> None:
    """admit reads a signature it cannot use as evidence (verified: false, so a policy that
    wants one denies): reading it must still end."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    src = tmp_path / "m.bin"
    src.write_bytes(b"x" * 100)
    pub = tmp_path / "key.pub"
    pub.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    args = ("admit", src, "--policy", "default", "--key", pub, "--signature", "/dev/zero")
    r = run_mlsec(*args, "--format", "json", env=_env(tmp_path), timeout=60)
    assert r.returncode == 1, r.stderr
    signature = json.loads(r.stdout)["evidence"]["signature"]
    assert signature["verified"] is False
    assert "/dev/zero: larger than 64 MiB" in signature["error"]


def test_identity_from_a_fifo_is_read_to_its_end(tmp_path: Path) -> None:
    identity, recipient = generate_identity()
    fifo = tmp_path / "id.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text(identity + "\n"), daemon=True)
    writer.start()
    r = run_mlsec("age-keygen", "-y", fifo, env=_env(tmp_path))
    writer.join(timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == recipient


# --- signals -------------------------------------------------------------------------------


def _feed_then_signal(proc: subprocess.Popen[str], fifo: Path, data: bytes, sig: int) -> None:
    """Write ``data`` into ``fifo`` (returns once the command has read most of it), then signal
    the command while it waits for more, and close the FIFO only after it has exited."""
    with open(fifo, "wb") as f:
        f.write(data)
        f.flush()
        proc.send_signal(sig)
        proc.wait(timeout=60)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_encrypt_killed_by_signal_leaves_nothing(tmp_path: Path, sig: int, code: int) -> None:
    _, recipient = _keys(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    proc = _start(tmp_path, "encrypt", fifo, "-r", recipient, "-o", out_dir / "m.age")
    _feed_then_signal(proc, fifo, os.urandom(4 * CHUNK), sig)
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == code, err
    assert f"terminated by {signal.Signals(sig).name}" in err
    assert _leftovers(out_dir, tmp_path / "TMPDIR") == []


def _encrypted(tmp_path: Path, size: int) -> tuple[Path, Path]:
    key, recipient = _keys(tmp_path)
    src = tmp_path / "plain.bin"
    with open(src, "wb") as f:
        for _ in range(size // CHUNK):
            f.write(os.urandom(CHUNK))
    enc = tmp_path / "plain.bin.age"
    r = run_mlsec("encrypt", src, "-r", recipient, "-o", enc, env=_env(tmp_path))
    assert r.returncode == 0, r.stderr
    src.unlink()
    return key, enc


def test_decrypt_killed_by_sigterm_leaves_no_plaintext(tmp_path: Path) -> None:
    key, enc = _encrypted(tmp_path, 8 * CHUNK)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    proc = _start(tmp_path, "decrypt", fifo, "-i", key, "-o", out_dir / "plain.bin")
    _feed_then_signal(proc, fifo, enc.read_bytes()[: 6 * CHUNK], signal.SIGTERM)
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 143, err
    assert _leftovers(out_dir, tmp_path / "TMPDIR") == []


def test_decrypt_extract_killed_by_sigterm_leaves_nothing(tmp_path: Path) -> None:
    key, recipient = _keys(tmp_path)
    model = tmp_path / "model"
    model.mkdir()
    for i in range(6):
        (model / f"w{i}.bin").write_bytes(os.urandom(CHUNK))
    enc = tmp_path / "model.tar.age"
    r = run_mlsec("encrypt", model, "-r", recipient, "-o", enc, env=_env(tmp_path))
    assert r.returncode == 0, r.stderr
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    proc = _start(tmp_path, "decrypt", fifo, "-i", key, "-x", out_dir / "model")
    _feed_then_signal(proc, fifo, enc.read_bytes()[: 4 * CHUNK], signal.SIGTERM)
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 143, err
    assert _leftovers(out_dir, tmp_path / "TMPDIR") == []


def test_pull_killed_by_sigterm_leaves_no_pull_dir(tmp_path: Path) -> None:
    # One blob: it is downloaded on the main thread, so the test controls exactly where the
    # signal lands (several blobs download on worker threads that stop at their next chunk).
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(os.urandom(4 * CHUNK))
    layout = tmp_path / "layout"
    r = run_mlsec("push", model, f"oci:{layout}:v1", env=_env(tmp_path))
    assert r.returncode == 0, r.stderr
    # Swap the large blob for a FIFO: the pull then reads the blob as slowly as the test feeds it.
    blob = max((layout / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    data = blob.read_bytes()
    blob.unlink()
    os.mkfifo(blob)
    dest_parent = tmp_path / "dest"
    dest_parent.mkdir()
    proc = _start(tmp_path, "pull", f"oci:{layout}:v1", dest_parent / "model")
    _feed_then_signal(proc, blob, data[: 2 * CHUNK], signal.SIGTERM)
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 143, err
    assert _leftovers(dest_parent, tmp_path / "TMPDIR") == []


def test_push_encrypt_to_killed_by_sigterm_leaves_no_seal_dir(tmp_path: Path) -> None:
    _, recipient = _keys(tmp_path)
    fifo = tmp_path / "model.bin"
    os.mkfifo(fifo)
    layout = tmp_path / "layout"
    proc = _start(tmp_path, "push", fifo, f"oci:{layout}:v1", "--encrypt-to", recipient)
    _feed_then_signal(proc, fifo, os.urandom(4 * CHUNK), signal.SIGTERM)
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 143, err
    assert _leftovers(tmp_path / "TMPDIR") == []


@pytest.mark.parametrize(
    "command",
    [("inspect",), ("scan", "--format", "json"), ("sbom",)],
    ids=["inspect", "scan", "sbom"],
)
def test_every_report_output_keeps_a_fifo_and_a_device(
    tmp_path: Path, example_model: Path, null_device: Path, command: tuple[str, ...]
) -> None:
    r = run_mlsec(*command, example_model, "-o", null_device, env=_env(tmp_path))
    assert r.returncode in (0, 1), r.stderr
    assert stat.S_ISCHR(os.lstat(null_device).st_mode)

    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    link = tmp_path / "report.link"
    link.symlink_to(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    r = run_mlsec(*command, example_model, "-o", link, env=_env(tmp_path))
    reader.join(timeout=120)
    assert r.returncode in (0, 1), r.stderr
    assert got and got[0].strip(), "the report went through the FIFO"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and link.is_symlink()


def test_dev_stdout_as_output_goes_to_the_pipe_or_the_shells_file(tmp_path: Path) -> None:
    r = run_mlsec("age-keygen", "-o", "/dev/stdout", env=_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "AGE-SECRET-KEY-1" in r.stdout
    out = tmp_path / "out.txt"
    out.write_text("earlier\n")
    inode = out.stat().st_ino
    with open(out, "a") as appending:  # mlsec age-keygen -o /dev/stdout >> out.txt
        proc = subprocess.run(
            [sys.executable, "-m", "mlsec", "age-keygen", "-o", "/dev/stdout"],
            env=_env(tmp_path),
            stdout=appending,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert text.startswith("earlier\n# created: ") and "AGE-SECRET-KEY-1" in text
    assert out.stat().st_ino == inode  # written through the descriptor, not replaced


@pytest.mark.parametrize("name", ["index.json", "oci-layout"])
def test_endless_file_in_an_image_layout_is_refused(tmp_path: Path, name: str) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"w" * 1000)
    layout = tmp_path / "layout"
    r = run_mlsec("push", model, f"oci:{layout}:v1", env=_env(tmp_path))
    assert r.returncode == 0, r.stderr
    (layout / name).unlink()
    (layout / name).symlink_to("/dev/zero")
    r = run_mlsec("pull", f"oci:{layout}:v1", tmp_path / "dest", env=_env(tmp_path), timeout=60)
    _one_error(r, "larger than")
    assert not (tmp_path / "dest").exists()


def test_pull_identity_killed_by_sigterm_leaves_nothing(tmp_path: Path) -> None:
    key, recipient = _keys(tmp_path)
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(os.urandom(4 * CHUNK))
    layout = tmp_path / "layout"
    r = run_mlsec("push", model, f"oci:{layout}:v1", "--encrypt-to", recipient, env=_env(tmp_path))
    assert r.returncode == 0, r.stderr
    blob = max((layout / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    data = blob.read_bytes()
    blob.unlink()
    os.mkfifo(blob)
    dest_parent = tmp_path / "dest"
    dest_parent.mkdir()
    proc = _start(tmp_path, "pull", f"oci:{layout}:v1", dest_parent / "model", "--identity", key)
    _feed_then_signal(proc, blob, data[: 2 * CHUNK], signal.SIGTERM)
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 143, err
    assert _leftovers(dest_parent, tmp_path / "TMPDIR") == []


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_full_device_is_an_error_and_stays_a_device(tmp_path: Path, example_model: Path) -> None:
    """`inspect -o /dev/full` once turned /dev/full into a JSON file. The node is made in
    tmp_path (c 1 7 is what /dev/full is), so a regression cannot damage the machine."""
    full = tmp_path / "full"
    os.mknod(full, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    r = run_mlsec("inspect", example_model, "-o", full, env=_env(tmp_path))
    _one_error(r, "No space left on device")
    assert stat.S_ISCHR(os.lstat(full).st_mode)
    r = run_mlsec("keygen", "-o", full, env=_env(tmp_path))
    _one_error(r, "not a regular file")
    assert not (tmp_path / "full.key").exists() and not (tmp_path / "full.pub").exists()


def test_dev_zero_as_push_signature_is_named_for_what_it_is(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"w" * 1000)
    layout = tmp_path / "layout"
    r = run_mlsec("push", model, f"oci:{layout}:v1", "--signature", "/dev/zero", env=_env(tmp_path))
    _one_error(r, "/dev/zero: not a regular file")  # it exists: "no such file" was wrong
    assert not layout.exists()  # refused before anything was pushed
