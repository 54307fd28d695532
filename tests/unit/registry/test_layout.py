"""The OCI image-layout store: push/pull round trips, index.json, tags, referrers, failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlsec.errors import RegistryError
from mlsec.registry import (
    SBOM_ARTIFACT_TYPE,
    SIGNATURE_ARTIFACT_TYPE,
    LayoutStore,
    attach,
    pull,
    push,
    referrers,
)
from mlsec.registry.oci import MODEL_ARTIFACT_TYPE, REF_NAME, TITLE
from tests.unit.registry.conftest import make_model, tree


def test_layout_round_trip_is_byte_identical(model_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    res = push(model_dir, f"oci:{store}:v1")
    assert res.layers == 6 and res.blobs_skipped == 0
    out = pull(f"oci:{store}:v1", tmp_path / "out")
    assert tree(tmp_path / "out") == tree(model_dir)
    assert out.digest == res.digest

    # The directory is a valid OCI image layout.
    assert json.loads((store / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((store / "index.json").read_text())
    (entry,) = index["manifests"]
    assert entry["digest"] == res.digest and entry["annotations"][REF_NAME] == "v1"
    manifest = json.loads((store / "blobs/sha256" / res.digest[7:]).read_bytes())
    assert manifest["artifactType"] == MODEL_ARTIFACT_TYPE
    assert sorted(layer["annotations"][TITLE] for layer in manifest["layers"]) == sorted(
        tree(model_dir)
    )
    for layer in manifest["layers"]:  # every blob is there under its digest
        assert (store / "blobs/sha256" / layer["digest"][7:]).stat().st_size == layer["size"]


def test_retag_moves_the_tag_and_keeps_other_tags(tmp_path: Path) -> None:
    store = tmp_path / "store"
    a = push(make_model(tmp_path / "a"), f"oci:{store}:v1")
    b = push(make_model(tmp_path / "b"), f"oci:{store}:v1")
    c = push(tmp_path / "a", f"oci:{store}:old")
    index = json.loads((store / "index.json").read_text())
    tags = {m["annotations"][REF_NAME]: m["digest"] for m in index["manifests"]}
    assert tags["v1"] == b.digest != a.digest
    assert tags["old"] == c.digest
    assert c.blobs_skipped == 6  # the config and five distinct file blobs were there already
    pull(f"oci:{store}@{a.digest}", tmp_path / "by-digest")  # untagged content stays pullable
    assert tree(tmp_path / "by-digest") == tree(tmp_path / "a")


def test_single_file_model(tmp_path: Path) -> None:
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " + b"\x01" * 1000)
    push(f, f"oci:{tmp_path / 's'}:v1")
    pull(f"oci:{tmp_path / 's'}:v1", tmp_path / "out")
    assert tree(tmp_path / "out") == {"model.safetensors": f.read_bytes()}


def test_default_local_store_for_bare_names(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSEC_HOME", str(tmp_path / "home"))
    push(model_dir, "team/tiny:v3")
    assert (tmp_path / "home/oci/team/tiny/index.json").is_file()
    pull("team/tiny:v3", tmp_path / "out")
    assert tree(tmp_path / "out") == tree(model_dir)


def test_corrupted_layout_blob_fails_and_leaves_nothing(model_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    push(model_dir, f"oci:{store}:v1")
    from mlsec.artifact import open_artifact

    sha = open_artifact(model_dir, digests=True).file("weights/part-0.bin").sha256
    blob = store / "blobs/sha256" / str(sha)
    data = bytearray(blob.read_bytes())
    data[1000] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(
        RegistryError, match=r"weights/part-0.bin: digest mismatch: expected sha256:"
    ):
        pull(f"oci:{store}:v1", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "store"]


def test_missing_layout_and_unknown_tag(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="not an OCI image layout"):
        pull(f"oci:{tmp_path / 'nowhere'}:v1", tmp_path / "out")
    push(model_dir, f"oci:{tmp_path / 'store'}:v1")
    with pytest.raises(RegistryError, match="unknown tag 'v2'"):
        pull(f"oci:{tmp_path / 'store'}:v2", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_dest_is_never_clobbered_without_force(model_dir: Path, tmp_path: Path) -> None:
    ref = f"oci:{tmp_path / 'store'}:v1"
    push(model_dir, ref)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep me")
    with pytest.raises(RegistryError, match="not empty"):
        pull(ref, dest)
    assert tree(dest) == {"mine.txt": b"keep me"}
    (tmp_path / "file").write_text("x")
    with pytest.raises(RegistryError, match="not a directory"):
        pull(ref, tmp_path / "file")
    pull(ref, dest, force=True)
    assert tree(dest) == tree(model_dir)
    empty = tmp_path / "empty"
    empty.mkdir()
    pull(ref, empty)  # an existing empty directory is fine
    assert tree(empty) == tree(model_dir)


def test_referrers_in_a_layout_use_the_tag_fallback(model_dir: Path, tmp_path: Path) -> None:
    ref = f"oci:{tmp_path / 'store'}:v1"
    res = push(model_dir, ref)
    sig = tmp_path / "model.sig"
    sig.write_text('{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}')
    bom = tmp_path / "bom.json"
    bom.write_text('{"bomFormat": "CycloneDX"}')
    a = attach(ref, sig, SIGNATURE_ARTIFACT_TYPE)
    b = attach(ref, bom, SBOM_ARTIFACT_TYPE)
    assert a.subject == res.digest and a.fallback_tag == "sha256-" + res.digest[7:]
    found = referrers(ref)
    assert {(r.digest, r.artifact_type) for r in found} == {
        (a.digest, SIGNATURE_ARTIFACT_TYPE),
        (b.digest, SBOM_ARTIFACT_TYPE),
    }
    out = pull(ref, tmp_path / "out", with_referrers=True)
    assert (tmp_path / "out.sig").read_bytes() == sig.read_bytes()
    assert (tmp_path / "out.cdx.json").read_bytes() == bom.read_bytes()
    assert set(out.referrer_files) == {tmp_path / "out.sig", tmp_path / "out.cdx.json"}
    # Attaching again appends to the fallback index without duplicating an entry.
    attach(ref, sig, SIGNATURE_ARTIFACT_TYPE)
    digests = [r.digest for r in referrers(ref)]
    assert len(digests) == len(set(digests)) >= 2
    assert LayoutStore(tmp_path / "store").referrers(res.digest) is None


def _crafted(store_dir: Path, titles: list[str]) -> str:
    """A layout holding a manifest whose layers carry ``titles`` (all valid blobs)."""
    from mlsec.progress import NULL_PROGRESS
    from mlsec.registry import Descriptor, Manifest
    from mlsec.registry.oci import EMPTY_CONFIG, EMPTY_JSON, MANIFEST_MEDIA_TYPE, digest_bytes

    store = LayoutStore(store_dir)
    store.push_blob(EMPTY_CONFIG, EMPTY_JSON, NULL_PROGRESS)
    layers = []
    for i, title in enumerate(titles):
        body = f"file {i}\n".encode()
        desc = Descriptor("application/octet-stream", digest_bytes(body), len(body), {TITLE: title})
        store.push_blob(desc, body, NULL_PROGRESS)
        layers.append(desc)
    data = Manifest(EMPTY_CONFIG, tuple(layers), MODEL_ARTIFACT_TYPE).to_bytes()
    store.push_manifest(data, MANIFEST_MEDIA_TYPE, "v1")
    return f"oci:{store_dir}:v1"


def test_a_file_that_cannot_be_written_fails_cleanly(tmp_path: Path) -> None:
    ref = _crafted(tmp_path / "store", ["ok.txt", "x" * 300])
    with pytest.raises(RegistryError, match=r"^x{300}: cannot write: File name too long"):
        pull(ref, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_crafted_traversal_in_a_layout_is_refused(tmp_path: Path) -> None:
    ref = _crafted(tmp_path / "store", ["a/b", "../../outside"])
    with pytest.raises(RegistryError, match=r"unsafe file path '\.\./\.\./outside'"):
        pull(ref, tmp_path / "sub" / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_layout_blobs_are_readable_by_others(model_dir: Path, tmp_path: Path) -> None:
    push(model_dir, f"oci:{tmp_path / 'store'}:v1")
    modes = {p.stat().st_mode & 0o777 for p in (tmp_path / "store/blobs/sha256").iterdir()}
    assert modes == {0o644}


def test_layout_manifest_corrupted_is_refused(model_dir: Path, tmp_path: Path) -> None:
    res = push(model_dir, f"oci:{tmp_path / 'store'}:v1")
    blob = tmp_path / "store/blobs/sha256" / res.digest[7:]
    blob.write_bytes(blob.read_bytes().replace(b'"dev.mlsec.kind":"', b'"dev.mlsec.kind":"x'))
    with pytest.raises(RegistryError, match=f"manifest v1: digest mismatch: expected {res.digest}"):
        pull(f"oci:{tmp_path / 'store'}:v1", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_relative_destinations(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = f"oci:{tmp_path / 'store'}:v1"
    push(model_dir, ref)
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    with pytest.raises(RegistryError, match="not empty"):
        pull(ref, ".")
    out = pull(ref, "copy")
    assert out.dest == work / "copy" and tree(work / "copy") == tree(model_dir)
    assert sorted(p.name for p in work.iterdir()) == ["copy", "notes.txt"]
    with pytest.raises(RegistryError, match="root directory"):
        pull(ref, "/", force=True)
