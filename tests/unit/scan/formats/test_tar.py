"""tar archives: legacy PyTorch checkpoints, nested compression, hostile names and links."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import torch

from mlsec.artifact import open_artifact
from mlsec.scan import Limits, ScanOptions, scan
from tests.unit.scan.formats.helpers import (
    EVIL_PICKLE,
    Member,
    build_zip,
    pickle_members,
    rules,
    scan_bytes,
)


def _tar(members: list[tuple[str, bytes]], *, mode: str = "w", links=()) -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target, kind in links:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


def test_legacy_torch_tar_checkpoint(tmp_path: Path, fake_pickle: None) -> None:
    # torch.save(..., _use_new_zipfile_serialization=False) writes the legacy pickle format;
    # the older tar layout is rebuilt here with its four pickle-led members.
    members = [
        ("sys_info", b"\x80\x02}q\x00."),
        ("pickle", EVIL_PICKLE),
        ("storages", b"\x80\x02K\x00." + b"\x00" * 64),
        ("tensors", b"\x80\x02K\x00."),
    ]
    report = scan_bytes(tmp_path, _tar(members), "old.pt")
    assert report.files[0].format == "tar"
    assert sorted(pickle_members(report)) == ["pickle", "storages", "sys_info", "tensors"]


def test_benign_tar_with_torch_zip_inside(tmp_path: Path, fake_pickle: None) -> None:
    ckpt = io.BytesIO()
    torch.save({"w": torch.zeros(4)}, ckpt)
    report = scan_bytes(tmp_path, _tar([("model/ckpt.pt", ckpt.getvalue())], mode="w:gz"))
    assert report.files[0].format == "gzip"
    [m] = pickle_members(report)
    assert m.startswith("<gzip>!model/ckpt.pt!") and m.endswith("/data.pkl")
    assert rules(report) == {"TEST-PICKLE"}


def test_tar_in_zip_in_tar(tmp_path: Path, fake_pickle: None) -> None:
    inner = _tar([("deep/data.pkl", EVIL_PICKLE)])
    z = build_zip([Member("a.tar", inner, method=8)])
    report = scan_bytes(tmp_path, _tar([("x.zip", z)]), "m.tar")
    assert pickle_members(report) == ["x.zip!a.tar!deep/data.pkl"]


def test_path_traversal_and_links(tmp_path: Path) -> None:
    data = _tar(
        [("../../etc/cron.d/x", b"x"), ("/abs", b"y")],
        links=[
            ("ok", "weights.bin", tarfile.SYMTYPE),
            ("sub/up", "../../../etc/passwd", tarfile.SYMTYPE),
            ("abs", "/etc/passwd", tarfile.LNKTYPE),
            ("dev", "", tarfile.CHRTYPE),
        ],
    )
    report = scan_bytes(tmp_path, data, "m.tar")
    found = [(f.rule, f.message.split("'")[1]) for f in report.findings]
    assert ("ARCHIVE-PATH-TRAVERSAL", "../../etc/cron.d/x") in found
    assert ("ARCHIVE-PATH-TRAVERSAL", "/abs") in found
    assert ("ARCHIVE-LINK-ESCAPE", "sub/up") in found
    assert ("ARCHIVE-LINK-ESCAPE", "abs") in found
    assert ("ARCHIVE-SPECIAL-FILE", "dev") in found
    assert not any(name == "ok" for _, name in found)


def test_member_limit(tmp_path: Path) -> None:
    p = tmp_path / "m.tar"
    p.write_bytes(_tar([(f"f{i}", b"x") for i in range(10)]))
    report = scan(open_artifact(p), ScanOptions(limits=Limits(max_members=3)))
    assert "MEMBER-LIMIT" in rules(report)


def test_corrupt_tar(tmp_path: Path) -> None:
    data = bytearray(_tar([("a", b"x" * 600), ("b", b"y")]))
    data[1536 + 148 : 1536 + 156] = b"garbage!"  # second header (after 1+2 blocks)
    report = scan_bytes(tmp_path, bytes(data), "m.tar")
    assert "TAR-HIDDEN-DATA" in rules(report)


def test_duplicate_names(tmp_path: Path, fake_pickle: None) -> None:
    data = _tar([("pickle", EVIL_PICKLE), ("pickle", b"\x80\x02K\x01.")])
    report = scan_bytes(tmp_path, data, "m.tar")
    assert "ARCHIVE-DUPLICATE-NAME" in rules(report)
    assert len(pickle_members(report)) == 2


@pytest.mark.parametrize("mode", ["w:gz", "w:xz", "w:bz2"])
def test_compressed_tar_is_streamed_past_the_member_size_limit(
    tmp_path: Path, fake_pickle: None, mode: str
) -> None:
    # the tar is bigger than max_member_size: it is walked as it decompresses, not cut off
    big = b"\x00" * (20 << 20)
    data = _tar([("weights.bin", big), ("model/data.pkl", EVIL_PICKLE)], mode=mode)
    p = tmp_path / "model.tar.x"
    p.write_bytes(data)
    report = scan(open_artifact(p), ScanOptions(limits=Limits(max_member_size=8 << 20)))
    assert pickle_members(report)[0].endswith("!model/data.pkl")
    assert rules(report) == {"TEST-PICKLE"}


def test_compressed_tar_budget(tmp_path: Path, fake_pickle: None) -> None:
    data = _tar([("a.bin", b"\x00" * (8 << 20)), ("b/data.pkl", EVIL_PICKLE)], mode="w:gz")
    p = tmp_path / "m.tgz"
    p.write_bytes(data)
    report = scan(open_artifact(p), ScanOptions(limits=Limits(max_total_extracted=1 << 20)))
    assert "EXTRACT-LIMIT" in rules(report)


def test_corrupt_compressed_tar(tmp_path: Path) -> None:
    data = bytearray(_tar([("a.bin", bytes(range(256)) * 4000)], mode="w:gz"))
    data[len(data) // 2 : len(data) // 2 + 16] = b"\xff" * 16
    # tarfile reports the broken stream as a corrupt archive; either way it fails closed
    assert rules(scan_bytes(tmp_path, bytes(data), "m.tgz")) & {"PARSE-ERROR", "TAR-CORRUPT"}


def test_compressed_tar_bomb(tmp_path: Path, fake_pickle: None) -> None:
    import tracemalloc

    data = _tar([("data.pkl", EVIL_PICKLE + b"\x00" * (200 << 20))], mode="w:gz")
    p = tmp_path / "bomb.tgz"
    p.write_bytes(data)
    tracemalloc.start()
    try:
        report = scan(open_artifact(p))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "DECOMPRESSION-BOMB" in rules(report)
    assert peak < 200 << 20, peak
