"""Decompression bombs: a size or ratio limit reached is a high finding (fail closed).

Bombs are built from bytes at test time without ever holding their output: a deflate block of
zeros ends on a byte boundary after a full flush and references nothing before it, so repeating
it makes a valid stream of any length; bzip2, xz and gzip readers read concatenated streams."""

from __future__ import annotations

import bz2
import io
import lzma
import struct
import tarfile
import zipfile
import zlib

import pytest

from .conftest import ScanBytes, rules_of

GiB = 1 << 30
_CHUNK = 16 << 20


def _deflate_zeros(total: int, *, final: bool = True, fill: bytes = b"\0") -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(fill * _CHUNK) + c.flush(zlib.Z_FULL_FLUSH)
    end = zlib.compressobj(9, zlib.DEFLATED, -15).flush() if final else b""
    return block * (total // _CHUNK) + end


def _raw_deflate(data: bytes, *, final: bool = False) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(zlib.Z_FINISH if final else zlib.Z_FULL_FLUSH)


def _gzip(raw: bytes) -> bytes:
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + raw + b"\0" * 8  # CRC never reached


def _zip_one(name: str, raw: bytes, usize: int) -> bytes:
    """A zip whose one deflated member is ``raw`` and declares ``usize`` (zip64 when needed)."""
    n = name.encode()
    z64 = usize >= 0xFFFFFFFF
    extra = struct.pack("<HHQQ", 1, 16, usize, len(raw)) if z64 else b""
    us, cs = (0xFFFFFFFF, 0xFFFFFFFF) if z64 else (usize, len(raw))
    fields = (0, 8, 0, 0, 0, cs, us, len(n), len(extra))
    loc = struct.pack("<4s5H3L2H", b"PK\x03\x04", 45, *fields) + n + extra
    cen = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 45, 45, *fields, 0, 0, 0, 0, 0) + n + extra
    off = len(loc) + len(raw)
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(cen), off, 0)
    return loc + raw + cen + eocd


def _high(report: object, rule: str) -> bool:
    return any(f.rule == rule and f.severity.value == "high" for f in report.findings)  # type: ignore[attr-defined]


def test_zip_member_declaring_4_gib_is_a_bomb(scan_bytes: ScanBytes) -> None:
    raw = _deflate_zeros(4 * GiB)
    assert len(raw) < 8 << 20
    report = scan_bytes(_zip_one("weights.bin", raw, 4 * GiB), "model.zip")
    assert _high(report, "ZIP-BOMB"), report.findings


def test_zip_bomb_just_under_zip64(scan_bytes: ScanBytes) -> None:
    raw = _deflate_zeros(3 * GiB)
    report = scan_bytes(_zip_one("data/blob", raw, 3 * GiB), "model.zip")
    assert _high(report, "ZIP-BOMB")


def test_zip_bomb_that_lies_about_its_size_is_caught_when_inflated(scan_bytes: ScanBytes) -> None:
    # Declares 1 MiB; its head looks like JSON, so the scanner inflates it, bounded by the ratio.
    raw = _raw_deflate(b'{"chat_template": "') + _deflate_zeros(1 * GiB, fill=b" ")
    report = scan_bytes(_zip_one("config.json", raw, 1 << 20), "model.zip")
    assert _high(report, "ZIP-BOMB"), report.findings


def test_compressible_but_normal_member_is_not_a_bomb(scan_bytes: ScanBytes) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("notes.txt", "a fairly repetitive line of text\n" * 200_000)  # 6.6 MB
    assert not rules_of(scan_bytes(buf.getvalue(), "model.zip"))


def test_gzip_bomb(scan_bytes: ScanBytes) -> None:
    report = scan_bytes(_gzip(_deflate_zeros(4 * GiB)), "model.pkl.gz")
    assert _high(report, "DECOMPRESSION-BOMB")


def test_zlib_bomb(scan_bytes: ScanBytes) -> None:
    # joblib's default compression; the zlib header before a raw deflate stream.
    report = scan_bytes(b"\x78\xda" + _deflate_zeros(4 * GiB), "model.joblib")
    assert _high(report, "DECOMPRESSION-BOMB"), report.findings


def test_bzip2_bomb_of_concatenated_streams(scan_bytes: ScanBytes) -> None:
    one = bz2.compress(b"\0" * _CHUNK)
    report = scan_bytes(one * (4 * GiB // _CHUNK), "model.pkl.bz2")
    assert _high(report, "DECOMPRESSION-BOMB")


def test_xz_bomb_of_concatenated_streams(scan_bytes: ScanBytes) -> None:
    one = lzma.compress(b"\0" * _CHUNK)
    report = scan_bytes(one * (1 * GiB // _CHUNK), "model.pkl.xz")
    assert _high(report, "DECOMPRESSION-BOMB")


@pytest.mark.parametrize("name", ["weights.bin", "model.pkl"])
def test_tar_gz_member_bomb(scan_bytes: ScanBytes, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.size = 4 * GiB
    raw = _raw_deflate(info.tobuf(format=tarfile.PAX_FORMAT))
    raw += _deflate_zeros(4 * GiB, final=False) + _raw_deflate(b"\0" * 1024, final=True)
    report = scan_bytes(_gzip(raw), "model.tar.gz")
    assert _high(report, "DECOMPRESSION-BOMB"), report.findings
    assert "EXTRACT-LIMIT" not in rules_of(report)  # stopped by the ratio, long before 2 GiB


def test_plain_tar_holding_a_gzip_bomb(scan_bytes: ScanBytes) -> None:
    bomb = _gzip(_deflate_zeros(1 * GiB))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("inner.pkl.gz")
        info.size = len(bomb)
        tf.addfile(info, io.BytesIO(bomb))
    assert _high(scan_bytes(buf.getvalue(), "model.tar"), "DECOMPRESSION-BOMB")


def test_real_tar_gz_is_clean(scan_bytes: ScanBytes) -> None:
    import os

    buf = io.BytesIO()
    payload = os.urandom(1 << 20)
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("weights.bin")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    assert not rules_of(scan_bytes(buf.getvalue(), "model.tar.gz"))


def test_many_dense_members_add_up_to_a_bomb(scan_bytes: ScanBytes) -> None:
    # Each member alone is below the bomb size; together they declare 1.6 GiB at ~1000x.
    raw = _deflate_zeros(100 << 20)
    data = _zip_many([(f"shard{i}.bin", raw, 100 << 20) for i in range(16)])
    report = scan_bytes(data, "model.zip")
    assert [f.rule for f in report.findings].count("ZIP-BOMB") == 1, report.findings


def test_zero_filled_tensor_of_ordinary_size_is_not_a_bomb(scan_bytes: ScanBytes) -> None:
    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, momentum=np.zeros((2048, 2048), dtype=np.float32))  # 16 MiB
    assert not rules_of(scan_bytes(buf.getvalue(), "optimizer.npz"))


def _zip_many(members: list[tuple[str, bytes, int]]) -> bytes:
    body = b""
    central = b""
    for name, raw, usize in members:
        n = name.encode()
        fields = (0, 8, 0, 0, 0, len(raw), usize, len(n), 0)
        local_offset = len(body)
        body += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, *fields) + n + raw
        central += struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, *fields, 0, 0, 0, 0, local_offset
        )
        central += n
    eocd = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), len(body), 0
    )
    return body + central + eocd


@pytest.mark.parametrize("compress", [3, ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3)])
def test_joblib_with_zero_filled_arrays_is_not_a_bomb(
    tmp_path: object, scan_bytes: ScanBytes, compress: object
) -> None:
    import joblib
    import numpy as np

    buf = io.BytesIO()
    state = {"coef": np.zeros((2048, 2048), dtype=np.float32), "bias": np.arange(10.0)}
    joblib.dump(state, buf, compress=compress)
    report = scan_bytes(buf.getvalue(), "model.joblib")
    assert not report.findings, report.findings
