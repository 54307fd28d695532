"""7z: decoding with the standard library, fail-closed for what it cannot decode."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mlsec.artifact import open_artifact
from mlsec.scan import Limits, ScanOptions, scan
from tests.unit.scan.formats.helpers import (
    EVIL_PICKLE,
    Member,
    build_zip,
    pickle_members,
    rules,
    scan_bytes,
    seven_zip,
    stored_7z,
)


def test_stored_7z_members_are_scanned(tmp_path: Path, fake_pickle: None) -> None:
    data = stored_7z([("readme.txt", b"hi"), ("archive/data.pkl", EVIL_PICKLE)])
    report = scan_bytes(tmp_path, data, "model.7z")
    assert report.files[0].format == "7z"
    assert pickle_members(report) == ["archive/data.pkl"]


def test_path_traversal_in_7z(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, stored_7z([("../../x.pkl", b"x")]), "m.7z")
    assert "ARCHIVE-PATH-TRAVERSAL" in rules(report)


def test_empty_archive_is_clean(tmp_path: Path) -> None:
    assert scan_bytes(tmp_path, seven_zip(b""), "m.7z").findings == ()


def test_7z_inside_a_zip(tmp_path: Path, fake_pickle: None) -> None:
    inner = stored_7z([("data.pkl", EVIL_PICKLE)])
    data = build_zip([Member("weights/model.bin", inner, method=8)])
    assert pickle_members(scan_bytes(tmp_path, data, "x.zip")) == ["weights/model.bin!data.pkl"]


@pytest.mark.parametrize(
    "data",
    [
        seven_zip(b"abc", bad_crc=True),
        seven_zip(b"abc", header=b"\x42\x00"),
        seven_zip(b"abc")[:-2],
        b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\x00" * 10,
        stored_7z([("a", b"abc")])[:40],
    ],
)
def test_broken_7z_is_parse_error(tmp_path: Path, data: bytes) -> None:
    assert "PARSE-ERROR" in rules(scan_bytes(tmp_path, data, "m.7z"))


# Real archives from py7zr (a test-only peer; mlsec itself decodes with the standard library).
import py7zr  # noqa: E402


def _py7zr(files: list[tuple[str, bytes]], **kw) -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", **kw) as z:
        for name, data in files:
            z.writestr(data, name)
    return buf.getvalue()


FILTERS = {
    "lzma2 (default)": None,
    "copy": [{"id": py7zr.FILTER_COPY}],
    "lzma": [{"id": py7zr.FILTER_LZMA}],
    "bcj+lzma2": [{"id": py7zr.FILTER_X86}, {"id": py7zr.FILTER_LZMA2}],
    "delta+lzma2": [{"id": py7zr.FILTER_DELTA}, {"id": py7zr.FILTER_LZMA2}],
    "deflate": [{"id": py7zr.FILTER_DEFLATE}],
    "bzip2": [{"id": py7zr.FILTER_BZIP2}],
}


@pytest.mark.parametrize("filters", FILTERS.values(), ids=FILTERS.keys())
def test_real_7z_archives_are_decoded(tmp_path: Path, fake_pickle: None, filters) -> None:
    data = _py7zr(
        [("readme.txt", b"hello " * 1000), ("archive/data.pkl", EVIL_PICKLE), ("empty", b"")],
        filters=filters,
    )
    report = scan_bytes(tmp_path, data, "model.7z")
    assert pickle_members(report) == ["archive/data.pkl"]
    assert rules(report) == {"TEST-PICKLE"}


def test_torch_checkpoint_inside_7z(tmp_path: Path, fake_pickle: None) -> None:
    import torch

    ckpt = io.BytesIO()
    torch.save({"w": torch.zeros(3)}, ckpt)
    report = scan_bytes(tmp_path, _py7zr([("model.pt", ckpt.getvalue())]), "model.7z")
    [m] = pickle_members(report)
    assert m.startswith("model.pt!") and m.endswith("data.pkl")


@pytest.mark.parametrize(
    "kw",
    [
        {"password": "pw"},
        {"password": "pw", "header_encryption": True},
        {"filters": [{"id": py7zr.FILTER_PPMD}]},
    ],
)
def test_undecodable_7z_fails_closed(tmp_path: Path, kw) -> None:
    report = scan_bytes(tmp_path, _py7zr([("archive/data.pkl", EVIL_PICKLE)], **kw), "m.7z")
    [f] = report.findings
    assert (f.rule, f.severity) == ("SEVENZIP-UNINSPECTED", "high")


def test_7z_bomb_is_bounded(tmp_path: Path, fake_pickle: None) -> None:
    p = tmp_path / "bomb.7z"
    p.write_bytes(_py7zr([("data.pkl", b"\x80\x02" + b"\x00" * (20 << 20))]))
    report = scan(open_artifact(p), ScanOptions(limits=Limits(max_member_size=4 << 20)))
    assert "DECOMPRESSION-BOMB" in rules(report)


def test_7z_bomb_stops_on_ratio_with_default_limits(tmp_path: Path, fake_pickle: None) -> None:
    import tracemalloc

    p = tmp_path / "bomb.7z"
    p.write_bytes(_py7zr([("data.pkl", EVIL_PICKLE + b"\x00" * (300 << 20))]))
    tracemalloc.start()
    try:
        report = scan(open_artifact(p))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "DECOMPRESSION-BOMB" in rules(report)
    assert peak < 200 << 20, peak
