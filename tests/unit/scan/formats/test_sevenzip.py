"""7z: header sanity and the fail-closed finding."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from tests.unit.scan.formats.helpers import Member, build_zip, rules, scan_bytes


def seven_zip(
    packed: bytes, header: bytes = b"\x01\x04\x00\x00", *, bad_crc: bool = False
) -> bytes:
    start = struct.pack("<QQI", len(packed), len(header), zlib.crc32(header) ^ int(bad_crc))
    return (
        b"7z\xbc\xaf\x27\x1c\x00\x04"
        + struct.pack("<I", zlib.crc32(start))
        + start
        + packed
        + header
    )


def test_7z_fails_closed(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, seven_zip(b"\x00" * 100), "model.7z")
    assert report.files[0].format == "7z"
    [f] = report.findings
    assert (f.rule, f.severity) == ("SEVENZIP-UNINSPECTED", "high")


def test_7z_inside_a_zip_is_reported(tmp_path: Path) -> None:
    data = build_zip([Member("weights/model.bin", seven_zip(b"\x01" * 50), method=8)])
    assert "SEVENZIP-UNINSPECTED" in rules(scan_bytes(tmp_path, data, "x.zip"))


@pytest.mark.parametrize(
    "data",
    [
        seven_zip(b"abc", bad_crc=True),
        seven_zip(b"abc", header=b"\x42\x00"),
        seven_zip(b"abc")[:-2],
        b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\x00" * 10,
    ],
)
def test_broken_7z_is_parse_error(tmp_path: Path, data: bytes) -> None:
    assert "PARSE-ERROR" in rules(scan_bytes(tmp_path, data, "m.7z"))
