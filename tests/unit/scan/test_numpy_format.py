"""The .npy analyzer: header parsing, object arrays (pickle after the header), npz members."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mlsec.scan import Severity

from .conftest import ScanBytes, rules_of, worst
from .samples import Reduce


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


@pytest.mark.parametrize(
    "arr",
    [
        np.arange(10.0),
        np.zeros((3, 4), dtype=np.float16, order="F"),
        np.array([True, False]),
        np.array(["ab", "c"]),
        np.zeros(0, dtype=np.int64),
        np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")]),
        np.array([1, "x", None, {"k": [1.5]}], dtype=object),
        np.array(3.5),
    ],
)
def test_real_arrays_are_clean(scan_bytes: ScanBytes, arr: np.ndarray) -> None:
    report = scan_bytes(_npy(arr), "a.npy")
    assert report.files[0].format == "npy"
    assert report.findings == ()


def test_object_array_payload_is_critical(scan_bytes: ScanBytes) -> None:
    header_arr = np.empty(1, dtype=object)
    header_arr[0] = Reduce(os.system, "touch /tmp/x")  # pickled by np.save, never loaded
    report = scan_bytes(_npy(header_arr), "a.npy")
    assert worst(report) == "critical"


@pytest.mark.parametrize(
    "header",
    [
        b"{'descr': '<f8', 'fortran_order': False}",  # missing shape
        b"{'descr': '<f8', 'fortran_order': False, 'shape': (-1,)}",
        b"__import__('os').system('id')",
        b"{'descr': '<f8', 'fortran_order': 'no', 'shape': (1,)}",
    ],
)
def test_bad_header_is_high(scan_bytes: ScanBytes, header: bytes) -> None:
    data = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\x00" * 8
    report = scan_bytes(data, "a.npy")
    assert "NUMPY-BAD-HEADER" in rules_of(report)
    assert report.max_severity is Severity.HIGH


def test_trailing_data_is_medium(scan_bytes: ScanBytes) -> None:
    report = scan_bytes(_npy(np.arange(4.0)) + b"junk", "a.npy")
    assert rules_of(report) == {"NUMPY-TRAILING-DATA"}


def test_npz_members(tmp_path: Path) -> None:
    """npz members reach the npy analyzer through the zip analyzer (when it is on the branch)."""
    from mlsec.artifact import open_artifact
    from mlsec.formats import Format
    from mlsec.scan import scan
    from mlsec.scan.registry import analyzer_for

    p = tmp_path / "a.npz"
    np.savez(p, a=np.arange(3), b=np.array([1, None], dtype=object))
    with zipfile.ZipFile(p) as zf:
        for name in zf.namelist():
            q = tmp_path / name
            q.write_bytes(zf.read(name))
            assert scan(open_artifact(q)).findings == ()
    assert analyzer_for(Format.NPZ) is not None
    assert scan(open_artifact(p)).findings == ()
    evil = tmp_path / "evil.npz"
    arr = np.empty(1, dtype=object)
    arr[0] = Reduce(os.system, "touch /tmp/x")
    np.savez(evil, a=arr)
    assert worst(scan(open_artifact(evil))) == "critical"


def test_pickle_protocol_of_object_array_is_scanned_from_header_end(scan_bytes: ScanBytes) -> None:
    data = _npy(np.array([1, None], dtype=object))
    assert pickle.dumps is not None and b"\x80" in data
    assert scan_bytes(data, "a.npy").files[0].globals
