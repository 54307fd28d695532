"""The artifact model: safe walk, ignores, symlink policy, canonical order, one-pass digests."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest

from mlsec.artifact import Artifact, hash_files, open_artifact, sort_key
from mlsec.errors import ArtifactError, ExitCode
from mlsec.formats import Format
from mlsec.progress import Progress
from tests.unit.signing.pki import copy_example


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def test_example_model_formats_and_digests(example_model):
    art = open_artifact(example_model, digests=True)
    by_path = {f.path: f for f in art.files}
    assert by_path["model.safetensors"].format is Format.SAFETENSORS
    assert by_path["training_state.pkl"].format is Format.PICKLE
    assert by_path["config.json"].format is Format.JSON
    for f in art.files:
        assert f.sha256 == hashlib.sha256((example_model / f.path).read_bytes()).hexdigest()
        assert f.size == (example_model / f.path).stat().st_size


def test_same_file_set_and_digests_as_a_model_signing_bundle(tmp_path):
    """The walk and digests agree with a bundle the real model_signing CLI made at test time."""
    ex = copy_example(tmp_path)
    model = ex / "model"
    sig = json.loads((ex / "model.sig").read_text())
    statement = json.loads(base64.b64decode(sig["dsseEnvelope"]["payload"]))
    signed = [(r["name"], r["digest"]) for r in statement["predicate"]["resources"]]
    art = open_artifact(model, digests=True)
    assert [(f.path, f.sha256) for f in art.files] == signed
    assert [i.path for i in art.ignored] == [".gitattributes"]
    root = hashlib.sha256(b"".join(bytes.fromhex(f.sha256 or "") for f in art.files)).hexdigest()
    assert root == statement["subject"][0]["digest"]["sha256"]


def test_hidden_files_included_default_ignores_only_at_root(tmp_path):
    root = _tree(
        tmp_path / "m",
        {
            ".hidden": b"h",
            ".git/config": b"c",
            ".gitignore": b"*",
            ".github/workflows/ci.yml": b"x",
            "sub/.git/config": b"c",
            "sub/.gitignore": b"*",
            "w.bin": b"w",
        },
    )
    art = open_artifact(root)
    assert [f.path for f in art.files] == [".hidden", "sub/.git/config", "sub/.gitignore", "w.bin"]
    assert {i.path for i in art.ignored} == {".git", ".github", ".gitignore"}
    assert all(i.reason == "default ignore" for i in art.ignored)
    art2 = open_artifact(root, ignore_git=False)
    assert ".git/config" in art2 and ".github/workflows/ci.yml" in art2


def test_user_ignores_paths_and_globs(tmp_path, monkeypatch):
    root = _tree(
        tmp_path / "m",
        {"logs/a.txt": b"1", "logs/b.txt": b"2", "x.tmp": b"t", "d/y.tmp": b"t", "keep": b"k"},
    )
    art = open_artifact(root, ignore=["logs", "*.tmp"])
    assert [f.path for f in art.files] == ["keep"]
    # An existing path (relative to the CWD) inside the artifact works too.
    monkeypatch.chdir(tmp_path)
    art = open_artifact(root, ignore=["m/logs"])
    assert "logs/a.txt" not in art and "x.tmp" in art


def test_canonical_order_is_by_path_components(tmp_path):
    root = _tree(tmp_path / "m", {"a.txt": b"1", "a/b": b"2", "B": b"3", "a/a/c": b"4"})
    art = open_artifact(root)
    assert [f.path for f in art.files] == ["B", "a/a/c", "a/b", "a.txt"]
    assert sorted(["a.txt", "a/b"], key=sort_key) == ["a/b", "a.txt"]


def test_single_file_artifact(tmp_path):
    p = tmp_path / "model.pkl"
    p.write_bytes(b"\x80\x04K\x01.")
    art = open_artifact(p, digests=True)
    assert not art.is_dir
    assert [(f.path, f.format) for f in art.files] == [("model.pkl", Format.PICKLE)]
    assert art.files[0].sha256 == hashlib.sha256(b"\x80\x04K\x01.").hexdigest()


def test_symlink_leaving_root_is_refused(tmp_path):
    outside = tmp_path / "secret"
    outside.write_text("s")
    root = _tree(tmp_path / "m", {"w": b"w"})
    (root / "link").symlink_to(outside)
    with pytest.raises(ArtifactError, match="link: symlink points outside the artifact"):
        open_artifact(root)
    with pytest.raises(ArtifactError, match="outside the artifact"):
        open_artifact(root, allow_symlinks=True)


def test_dotdot_symlink_and_broken_symlink_refused(tmp_path):
    root = _tree(tmp_path / "m", {"w": b"w"})
    (root / "up").symlink_to("../")
    with pytest.raises(ArtifactError, match="outside"):
        open_artifact(root)
    (root / "up").unlink()
    (root / "dangling").symlink_to(root / "nothing")
    with pytest.raises(ArtifactError, match="dangling: broken symlink"):
        open_artifact(root)


def test_inside_symlink_ignored_by_default_followed_when_allowed(tmp_path):
    root = _tree(tmp_path / "m", {"real/w.bin": b"weights"})
    (root / "alias.bin").symlink_to("real/w.bin")
    (root / "alias_dir").symlink_to("real")
    art = open_artifact(root)
    assert [f.path for f in art.files] == ["real/w.bin"]
    assert {i.path for i in art.ignored} == {"alias.bin", "alias_dir"}
    art = open_artifact(root, allow_symlinks=True, digests=True)
    assert [f.path for f in art.files] == ["alias.bin", "alias_dir/w.bin", "real/w.bin"]
    assert len({f.sha256 for f in art.files}) == 1
    assert art.file("alias.bin").via_symlink


def test_directory_loop_refused(tmp_path):
    root = _tree(tmp_path / "m", {"a/w": b"w"})
    (root / "a" / "loop").symlink_to("..")
    # Not followed by default: no loop, the link is listed as ignored.
    assert "a/loop" in {i.path for i in open_artifact(root).ignored}
    with pytest.raises(ArtifactError, match="a/loop: directory loop"):
        open_artifact(root, allow_symlinks=True)


def test_fifo_refused(tmp_path):
    root = _tree(tmp_path / "m", {"w": b"w"})
    os.mkfifo(root / "pipe")
    with pytest.raises(ArtifactError, match="pipe: not a regular file"):
        open_artifact(root)


def test_missing_path(tmp_path):
    with pytest.raises(ArtifactError, match="no such file") as info:
        open_artifact(tmp_path / "nope")
    assert info.value.exit_code is ExitCode.ERROR


def test_artifact_given_as_symlink_keeps_its_name(tmp_path):
    blob = tmp_path / "blobs" / "f00"
    blob.parent.mkdir()
    blob.write_bytes(b"x")
    link = tmp_path / "model.safetensors"
    link.symlink_to(blob)
    art = open_artifact(link)
    assert art.name == "model.safetensors"
    assert art.files[0].path == "model.safetensors"


class CountingProgress:
    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.finished = False

    def start(self, description: str, total: int) -> None:
        self.total = total

    def advance(self, amount: int) -> None:
        self.done += amount

    def finish(self) -> None:
        self.finished = True


def test_digests_computed_once_and_progress_reported(tmp_path):
    big = os.urandom(9 * 1024 * 1024 + 7)  # several 4 MiB reads
    root = _tree(tmp_path / "m", {"big.bin": big, "small": b"s", "empty": b""})
    art = open_artifact(root)
    assert not art.has_digests
    progress: Progress = CountingProgress()
    hashed = art.with_digests(progress=progress)
    assert isinstance(hashed, Artifact) and hashed.has_digests
    assert progress.total == progress.done == len(big) + 1  # type: ignore[attr-defined]
    assert progress.finished  # type: ignore[attr-defined]
    assert hashed.file("big.bin").sha256 == hashlib.sha256(big).hexdigest()
    assert hashed.file("empty").sha256 == hashlib.sha256(b"").hexdigest()
    # Already hashed: the same object comes back, nothing is read again.
    assert hashed.with_digests() is hashed


def test_parallel_and_sequential_hashing_agree(tmp_path):
    paths = []
    for i in range(12):
        p = tmp_path / f"f{i}"
        p.write_bytes(os.urandom(i * 300_000))
        paths.append(p)
    assert hash_files(paths, workers=4) == hash_files(paths, workers=1)
    assert hash_files(paths, workers=4) == [
        hashlib.sha256(p.read_bytes()).hexdigest() for p in paths
    ]


def test_to_dict_shape(example_model):
    d = open_artifact(example_model, digests=True).to_dict()
    assert set(d) == {"path", "kind", "file_count", "total_size", "files", "ignored"}
    assert d["kind"] == "directory" and d["file_count"] == len(d["files"]) == 5
    assert set(d["files"][0]) == {"path", "format", "size", "sha256"}


def test_relative_ignore_means_root_relative_even_if_cwd_has_it(tmp_path, monkeypatch):
    root = _tree(tmp_path / "m", {"logs/a": b"1", "keep": b"k"})
    (tmp_path / "logs").mkdir()  # a same-named directory in the CWD must not win
    monkeypatch.chdir(tmp_path)
    art = open_artifact(root, ignore=["logs"])
    assert [f.path for f in art.files] == ["keep"]
    # An absolute path outside the artifact ignores nothing.
    assert len(open_artifact(root, ignore=[str(tmp_path / "logs")]).files) == 2


def test_formats_sniffed_during_hashing_match_the_sniff_pass(tmp_path, example_model):
    """open_artifact(digests=True) reads each file once and sniffs from that read: same result."""
    import zipfile

    import h5py
    import numpy as np

    with h5py.File(example_model / "user.h5", "w", userblock_size=1024) as f:
        f["x"] = np.arange(3)
    np.savez(example_model / "arrays.npz", a=np.arange(4))
    with zipfile.ZipFile(example_model / "bundle.bin", "w") as zf:
        zf.writestr("readme.txt", "hi")
    (example_model / "big.bin").write_bytes(os.urandom(5 * 1024 * 1024))
    (example_model / "empty").write_bytes(b"")
    sniffed = open_artifact(example_model)
    hashed = open_artifact(example_model, digests=True)
    assert [(f.path, f.format) for f in hashed.files] == [(f.path, f.format) for f in sniffed.files]
    formats = {f.path: f.format for f in hashed.files}
    assert formats["user.h5"] is Format.HDF5
    assert formats["arrays.npz"] is Format.NPZ
    assert formats["bundle.bin"] is Format.ZIP
    assert formats["empty"] is Format.EMPTY
    assert (
        hashed.file("big.bin").sha256
        == hashlib.sha256((example_model / "big.bin").read_bytes()).hexdigest()
    )
    single = open_artifact(example_model / "arrays.npz", digests=True)
    assert single.files[0].format is Format.NPZ


def test_hashing_at_read_boundaries_matches_hashlib_and_sniffs(tmp_path, monkeypatch):
    """Files are hashed through one reused read buffer per thread; digests, formats and progress
    are exact at buffer boundaries, and a zip is still sniffed from its end."""
    import numpy as np

    import mlsec.artifact as artifact

    monkeypatch.setattr(artifact, "_chunk", artifact._MIN_BUFFER)
    monkeypatch.setattr(artifact, "_buffers", __import__("threading").local())
    n = artifact._MIN_BUFFER
    root = _tree(
        tmp_path / "m",
        {"empty": b"", "exact": os.urandom(2 * n), "plus1": os.urandom(n + 1), "less": b"x" * 5},
    )
    np.savez(root / "big.npz", a=np.zeros(300_000))  # a zip several buffers long
    progress = CountingProgress()
    art = open_artifact(root, digests=True, progress=progress)
    assert art.file("big.npz").format is Format.NPZ
    for f in art.files:
        assert f.sha256 == hashlib.sha256((root / f.path).read_bytes()).hexdigest(), f.path
    assert progress.done == art.total_size
    assert hash_files([root / "plus1"]) == [art.file("plus1").sha256]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"index0": ("1", "Data", "48K"), "index2": ("2", "Unified", "2048K")}, 1024 * 1024),
        ({"index2": ("2", "Unified", "512K")}, 256 * 1024),
        ({"index2": ("2", "Unified", "1M")}, 512 * 1024),
        ({"index2": ("2", "Unified", "32M")}, 1024 * 1024),  # capped
        ({"index1": ("2", "Instruction", "1024K")}, 512 * 1024),  # no data L2: the default
        ({"index2": ("2", "Unified", "garbage")}, 512 * 1024),
        ({}, 512 * 1024),
    ],
)
def test_read_buffer_is_sized_from_the_l2_cache(tmp_path, files, expected):
    import mlsec.artifact as artifact

    for name, (level, kind, size) in files.items():
        d = tmp_path / name
        d.mkdir()
        (d / "level").write_text(level + "\n")
        (d / "type").write_text(kind + "\n")
        (d / "size").write_text(size + "\n")
    assert artifact._buffer_size(artifact._l2_size(tmp_path)) == expected
    assert artifact.PREFIX_SIZE <= artifact._MIN_BUFFER  # the first read holds the sniff prefix


def test_reuse_hashes_each_unchanged_file_once(tmp_path, monkeypatch):
    """A second walk of the same model (a signature's view) takes the first walk's digests: the
    Artifact is passed, there is no global cache."""
    import mlsec.artifact as artifact

    root = _tree(tmp_path / "m", {"a": b"alpha", "b": b"beta" * 1000, "sub/c": b"gamma"})
    hashed: list[str] = []
    real = artifact._hash_one

    def counting(path, progress, sniff_it):
        hashed.append(Path(path).name)
        return real(path, progress, sniff_it)

    monkeypatch.setattr(artifact, "_hash_one", counting)
    first = open_artifact(root, digests=True)
    again = open_artifact(root, ignore=["sub"], digests=True, reuse=first)  # another view
    assert sorted(hashed) == ["a", "b", "c"]
    assert [f.sha256 for f in again.files] == [f.sha256 for f in first.files if f.path != "sub/c"]
    assert [f.format for f in again.files] == [f.format for f in first.files if f.path != "sub/c"]
    (root / "a").write_bytes(b"changed!")  # size differs: hashed again
    changed = open_artifact(root, digests=True, reuse=first)
    assert changed.file("a").sha256 == hashlib.sha256(b"changed!").hexdigest()
    assert sorted(hashed) == ["a", "a", "b", "c"]
    open_artifact(root, digests=True)  # without reuse: everything is read
    assert len(hashed) == 7
    assert not hasattr(artifact, "shared_digests")
