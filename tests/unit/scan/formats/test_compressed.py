"""Compressed streams: joblib's compressions, bombs, corrupt and unsupported streams."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from pathlib import Path

import joblib
import numpy as np
import pytest

from mlsec.artifact import open_artifact
from mlsec.scan import Limits, ScanOptions, scan
from tests.unit.scan.formats.helpers import EVIL_PICKLE, pickle_members, rules, scan_bytes


@pytest.mark.parametrize(
    ("compress", "fmt"),
    [
        (3, "zlib"),
        (("gzip", 3), "gzip"),
        (("bz2", 3), "bzip2"),
        (("xz", 3), "xz"),
        (("lzma", 3), "xz"),
    ],
)
def test_joblib_dumps_are_decompressed(
    tmp_path: Path, fake_pickle: None, compress: object, fmt: str
) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump({"w": np.arange(100), "name": "m"}, path, compress=compress)
    report = scan(open_artifact(path))
    assert report.files[0].format == fmt
    assert len(pickle_members(report)) == 1
    assert rules(report) == {"TEST-PICKLE"}


@pytest.mark.parametrize(
    "pack",
    [gzip.compress, zlib.compress, bz2.compress, lzma.compress],
)
def test_evil_pickle_inside_any_compression(tmp_path: Path, fake_pickle: None, pack) -> None:
    report = scan_bytes(tmp_path, pack(EVIL_PICKLE))
    assert any(f.rule == "TEST-PICKLE" and f.severity == "critical" for f in report.findings)


def test_concatenated_gzip_members_are_followed(tmp_path: Path, fake_pickle: None) -> None:
    data = gzip.compress(EVIL_PICKLE[:20]) + gzip.compress(EVIL_PICKLE[20:])
    report = scan_bytes(tmp_path, data)
    assert any(f.rule == "TEST-PICKLE" and f.severity == "critical" for f in report.findings)


def test_gzip_bomb_is_bounded(tmp_path: Path) -> None:
    data = gzip.compress(b"\x80\x02" + b"\x00" * (40 * 1024 * 1024))
    p = tmp_path / "bomb.gz"
    p.write_bytes(data)
    report = scan(open_artifact(p), ScanOptions(limits=Limits(max_member_size=8 * 1024 * 1024)))
    assert rules(report) & {"DECOMPRESSION-BOMB", "DECOMPRESSION-LIMIT"}


def test_ratio_limit(tmp_path: Path) -> None:
    data = zlib.compress(b"\x00" * (64 * 1024 * 1024), 9)
    report = scan_bytes(tmp_path, data)
    assert "DECOMPRESSION-BOMB" in rules(report)


def test_corrupt_stream(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(EVIL_PICKLE * 100))
    data[20:30] = b"\xff" * 10
    assert "PARSE-ERROR" in rules(scan_bytes(tmp_path, bytes(data)))


def test_truncated_stream(tmp_path: Path, fake_pickle: None) -> None:
    data = bz2.compress(EVIL_PICKLE * 100)[:-10]
    assert "COMPRESSED-TRUNCATED" in rules(scan_bytes(tmp_path, data))


def test_trailing_garbage(tmp_path: Path, fake_pickle: None) -> None:
    data = gzip.compress(EVIL_PICKLE) + b"garbage!"
    assert "COMPRESSED-TRAILING-DATA" in rules(scan_bytes(tmp_path, data))


@pytest.mark.parametrize("magic", [b"\x28\xb5\x2f\xfd", b"\x04\x22\x4d\x18"])
def test_zstd_and_lz4_fail_closed(tmp_path: Path, magic: bytes) -> None:
    report = scan_bytes(tmp_path, magic + b"\x00" * 32)
    assert "CANNOT-INSPECT" in rules(report)
    assert report.failed(report.findings[0].severity)


def test_large_but_not_bomb(tmp_path: Path, fake_pickle: None) -> None:
    import os

    data = gzip.compress(b"\x80\x02" + os.urandom(6 << 20), 1)
    p = tmp_path / "big.gz"
    p.write_bytes(data)
    report = scan(open_artifact(p), ScanOptions(limits=Limits(max_member_size=2 << 20)))
    assert "DECOMPRESSION-LIMIT" in rules(report)
    assert "DECOMPRESSION-BOMB" not in rules(report)


def test_age_encrypted_content_cannot_be_vouched_for(tmp_path: Path) -> None:
    """An encrypted model is not 'clean': its content is unseen (fail closed)."""
    from mlsec.crypt import encrypt, generate_identity
    from mlsec.formats import Format, sniff_bytes

    _, recipient = generate_identity()
    for armor in (False, True):
        out = io.BytesIO()
        encrypt(io.BytesIO(b"\x80\x04payload"), out, [recipient], armor=armor)
        assert sniff_bytes(out.getvalue()) is Format.AGE
        report = scan_bytes(tmp_path, out.getvalue(), "model.pt.age")
        assert [(f.rule, f.severity.value) for f in report.findings] == [("CANNOT-INSPECT", "high")]
