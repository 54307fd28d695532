"""Directory models: deterministic tar in one age file; safe, atomic extraction."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from mlsec.crypt import EncryptWriter, decrypt_extract, encrypt_dir
from mlsec.errors import CryptError
from tests.unit.crypt.helpers import Keys, age

KEYS = Keys()


@pytest.fixture
def model(tmp_path) -> Path:
    root = tmp_path / "model"
    (root / "shards" / "deep").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "config.json").write_text('{"model_type": "tiny"}')
    (root / "shards" / "model-00001.safetensors").write_bytes(os.urandom(150_000))
    (root / "shards" / "deep" / "zero.bin").write_bytes(b"")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    return root


def tree(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armor"])
def test_round_trip(tmp_path, model, armor):
    stats = encrypt_dir(model, tmp_path / "m.tar.age", [KEYS.recipient], armor=armor)
    assert (tmp_path / "m.tar.age").read_bytes().startswith(b"-----BEGIN" if armor else b"age-")
    assert (stats.files, stats.dirs) == (4, 3)
    got = decrypt_extract(tmp_path / "m.tar.age", tmp_path / "out", KEYS.identities)
    assert got == stats
    assert tree(tmp_path / "out") == tree(model)
    assert os.stat(tmp_path / "out" / "run.sh").st_mode & 0o111
    assert not os.stat(tmp_path / "out" / "config.json").st_mode & 0o111


def test_archive_is_deterministic_and_plain_tar(tmp_path, model):
    key = KEYS.write(tmp_path / "key.txt")
    plains = []
    for name in ("a.age", "b.age"):
        encrypt_dir(model, tmp_path / name, [KEYS.recipient])
        proc = age("-d", "-i", key, tmp_path / name)
        assert proc.returncode == 0
        plains.append(proc.stdout)
    assert plains[0] == plains[1]
    with tarfile.open(fileobj=io.BytesIO(plains[0])) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" for m in members)
    # and the system tar extracts what age decrypts
    dest = tmp_path / "by-tar"
    dest.mkdir()
    subprocess.run(["tar", "-x", "-C", dest], input=plains[0], check=True)
    assert tree(dest) == tree(model)


def test_tar_then_age_is_extracted(tmp_path, model):
    plain = subprocess.run(["tar", "-C", model, "-cf", "-", "."], capture_output=True).stdout
    enc = tmp_path / "gnu.tar.age"
    enc.write_bytes(age("-r", KEYS.recipient, input=plain).stdout)
    decrypt_extract(enc, tmp_path / "out", KEYS.identities)
    assert tree(tmp_path / "out") == tree(model)


def test_links_and_special_files_are_not_archived(tmp_path, model):
    (model / "link").symlink_to("config.json")
    with pytest.raises(CryptError, match="is a symlink"):
        encrypt_dir(model, tmp_path / "m.age", [KEYS.recipient])
    (model / "link").unlink()
    os.mkfifo(model / "fifo")
    with pytest.raises(CryptError, match="special file"):
        encrypt_dir(model, tmp_path / "m.age", [KEYS.recipient])
    assert not (tmp_path / "m.age").exists()


def hostile(tmp_path: Path, build, tail: bytes = b"") -> Path:
    """Encrypt a tar made by ``build(tar)`` (plus ``tail``) for KEYS."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        build(tar)
    enc = tmp_path / "hostile.tar.age"
    with open(enc, "wb") as f, EncryptWriter(f, [KEYS.recipient]) as w:
        w.write(buf.getvalue() + tail)
    return enc


def add_file(tar: tarfile.TarFile, name: str, data: bytes = b"x") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def add_special(tar: tarfile.TarFile, name: str, kind: bytes, target: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    tar.addfile(info)


CASES = {
    "dotdot": (lambda t: add_file(t, "../evil"), "unsafe path"),
    "nested_dotdot": (lambda t: add_file(t, "a/../../evil"), "unsafe path"),
    "absolute": (lambda t: add_file(t, "/tmp/evil"), "unsafe path"),
    "backslash": (lambda t: add_file(t, "..\\evil"), "unsafe path"),
    "symlink": (lambda t: add_special(t, "l", tarfile.SYMTYPE, "/etc/passwd"), "not a regular"),
    "hardlink": (lambda t: add_special(t, "h", tarfile.LNKTYPE, "/etc/passwd"), "not a regular"),
    "chardev": (lambda t: add_special(t, "c", tarfile.CHRTYPE), "not a regular"),
    "fifo": (lambda t: add_special(t, "f", tarfile.FIFOTYPE), "not a regular"),
    "duplicate": (lambda t: (add_file(t, "a"), add_file(t, "./a")), "duplicate path"),
    "file_then_dir": (lambda t: (add_file(t, "a"), add_file(t, "a/b")), "I/O error"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_archives_are_refused_and_leave_nothing(tmp_path, case):
    build, match = CASES[case]
    work = tmp_path / "work"
    work.mkdir()
    enc = hostile(tmp_path, build)
    with pytest.raises(CryptError, match=match):
        decrypt_extract(enc, work / "out", KEYS.identities)
    assert list(work.iterdir()) == []  # no output, no temp directory
    assert not (tmp_path / "evil").exists()


def test_limits(tmp_path):
    enc = hostile(tmp_path, lambda t: [add_file(t, f"f{i}") for i in range(5)])
    with pytest.raises(CryptError, match="more than 3 entries"):
        decrypt_extract(enc, tmp_path / "out", KEYS.identities, max_members=3)
    enc = hostile(tmp_path, lambda t: add_file(t, "big", b"x" * 5000))
    with pytest.raises(CryptError, match="more than 4096 bytes"):
        decrypt_extract(enc, tmp_path / "out", KEYS.identities, max_size=4096)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["after_padding", "inside_padding", "far_after"])
def test_data_after_the_archive_is_refused(tmp_path, where):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add_file(tar, "a")
    raw = bytearray(buf.getvalue())
    assert len(raw) == tarfile.RECORDSIZE
    if where == "inside_padding":
        raw[-10] = 1  # after the two zero blocks, still inside tar's record padding
    elif where == "after_padding":
        raw += b"hidden payload"
    else:
        raw += bytes(3 << 20) + b"!"  # beyond anything tarfile reads ahead
    enc = tmp_path / "tail.age"
    with open(enc, "wb") as f, EncryptWriter(f, [KEYS.recipient]) as w:
        w.write(bytes(raw))
    with pytest.raises(CryptError, match="data after the end of the archive"):
        decrypt_extract(enc, tmp_path / "out", KEYS.identities)
    assert not (tmp_path / "out").exists()


def test_zero_padding_after_the_archive_is_fine(tmp_path):
    enc = hostile(tmp_path, lambda t: add_file(t, "a"), tail=bytes(3 << 20))
    decrypt_extract(enc, tmp_path / "out", KEYS.identities)
    assert (tmp_path / "out" / "a").read_bytes() == b"x"


def test_a_truncated_tar_inside_a_valid_age_file(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        add_file(tar, "a", b"y" * 3000)
    enc = tmp_path / "cut.age"
    with open(enc, "wb") as f, EncryptWriter(f, [KEYS.recipient]) as w:
        w.write(buf.getvalue()[:1500])
    with pytest.raises(CryptError, match=r"malformed archive|truncated"):
        decrypt_extract(enc, tmp_path / "out", KEYS.identities)
    assert not (tmp_path / "out").exists()


def test_tampered_last_chunk_leaves_no_directory_even_after_members_were_written(tmp_path, model):
    enc = tmp_path / "m.tar.age"
    encrypt_dir(model, enc, [KEYS.recipient])
    blob = bytearray(enc.read_bytes())
    blob[-3] ^= 1  # the final chunk: every tar member before it decrypts fine
    enc.write_bytes(bytes(blob))
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(CryptError, match="final payload chunk"):
        decrypt_extract(enc, work / "out", KEYS.identities)
    assert list(work.iterdir()) == []


def test_existing_destination(tmp_path, model):
    enc = tmp_path / "m.tar.age"
    encrypt_dir(model, enc, [KEYS.recipient])
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    with pytest.raises(CryptError, match="already exists"):
        decrypt_extract(enc, dest, KEYS.identities)
    bad = tmp_path / "bad.age"
    bad.write_bytes(enc.read_bytes()[:-1])
    with pytest.raises(CryptError):
        decrypt_extract(bad, dest, KEYS.identities, overwrite=True)
    assert tree(dest) == {"old.txt": b"old"}
    decrypt_extract(enc, dest, KEYS.identities, overwrite=True)
    assert tree(dest) == tree(model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.age", "m.tar.age", "model", "out"]
