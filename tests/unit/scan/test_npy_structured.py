""".npy with structured / record dtypes: plain data unless a field holds Python objects.

Files are written by numpy itself (``np.save``); malicious ones from bytes, never loaded."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest

from mlsec.scan.formats.numpy import _dtype, _python2_header

from .conftest import ScanBytes, rules_of, worst
from .samples import Reduce


def _npy(arr: np.ndarray, **kw: object) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True, **kw)  # type: ignore[arg-type]
    return buf.getvalue()


_POINT = np.dtype([("x", "<f4"), ("y", "<f4")])
STRUCTURED = [
    np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8", (2,))]),
    np.zeros(2, dtype=[("pos", _POINT), ("vel", _POINT, (3,)), ("id", "<u8")]),
    np.zeros(2, dtype=[("outer", [("inner", [("deep", "<i2", (2, 2))])])]),
    np.rec.array(
        [(1, 2.0, b"ab"), (3, 4.0, b"cd")], dtype=[("O", "<i4"), ("f", "<f8"), ("s", "S2")]
    ),
    np.rec.fromarrays([np.arange(3), np.array(["x", "yy", "z"])], names="weight,label"),
    np.zeros(
        2, dtype=np.dtype({"names": ["a", "b"], "formats": ["<i2", "<f8"], "offsets": [0, 8]})
    ),
    np.zeros(2, dtype=[(("Title of a", "a"), "<i4"), ("t", "<M8[ns]"), ("d", "<m8[s]")]),
    np.zeros(4, dtype=[("c", "<c16"), ("flag", "?"), ("u", "<U7"), ("v", "V3")]),
    np.zeros((2, 3), dtype=[("a", ">i8"), ("b", "<f2")], order="F"),
    np.zeros(0, dtype=[("a", "<i4")]),
]


@pytest.mark.parametrize("arr", STRUCTURED, ids=lambda a: str(a.dtype)[:40])
def test_structured_arrays_are_clean(scan_bytes: ScanBytes, arr: np.ndarray) -> None:
    data = _npy(arr)
    report = scan_bytes(data, "a.npy")
    assert report.files[0].format == "npy"
    assert report.findings == (), report.findings


@pytest.mark.parametrize("arr", STRUCTURED, ids=lambda a: str(a.dtype)[:40])
def test_itemsize_matches_numpy(arr: np.ndarray) -> None:
    from numpy.lib.format import dtype_to_descr

    dt = _dtype(dtype_to_descr(arr.dtype))
    assert not dt.has_object
    assert dt.itemsize == arr.dtype.itemsize


def test_structured_trailing_data_is_seen(scan_bytes: ScanBytes) -> None:
    data = _npy(STRUCTURED[1]) + b"\x80\x04payload"
    assert rules_of(scan_bytes(data, "a.npy")) == {"NUMPY-TRAILING-DATA"}


def test_object_field_pickle_is_scanned(scan_bytes: ScanBytes) -> None:
    arr = np.empty(1, dtype=[("w", "<f4"), ("meta", [("obj", "O")])])
    arr[0]["meta"]["obj"] = Reduce(os.system, "touch /tmp/x")  # pickled by np.save, never loaded
    report = scan_bytes(_npy(arr), "a.npy")
    assert worst(report) == "critical"


def test_benign_object_field_is_scanned_as_pickle(scan_bytes: ScanBytes) -> None:
    arr = np.empty(2, dtype=[("w", "<f4"), ("tag", "O")])
    arr["tag"] = ["a", {"k": 1}]
    report = scan_bytes(_npy(arr), "a.npy")
    assert report.findings == ()


def _raw(header: bytes, body: bytes = b"") -> bytes:
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + body


@pytest.mark.parametrize(
    "descr",
    [
        "[('a', '<i4', 'x')]",  # shape is not a size
        "[('a',)]",
        "[(1, '<i4')]",  # field name not a string
        "{'a': '<i4'}",
        "'<zz'",
        "[('a', " * 40 + "'<i4'" + ")]" * 40,  # deeper than any real dtype
    ],
)
def test_malformed_structured_descr_is_high(scan_bytes: ScanBytes, descr: str) -> None:
    header = f"{{'descr': {descr}, 'fortran_order': False, 'shape': (1,), }}".encode()
    report = scan_bytes(_raw(header, b"\x00" * 8), "a.npy")
    assert "NUMPY-BAD-HEADER" in rules_of(report)
    assert worst(report) == "high"


def test_field_named_like_a_dtype_is_only_a_name() -> None:
    assert not _dtype([("O", "<i4"), ("object", "<f8")]).has_object
    assert _dtype([("a", "|O")]).has_object
    assert _dtype(("|O", (2,))).has_object


def test_python2_header_longs(scan_bytes: ScanBytes) -> None:
    assert _python2_header("{'shape': (3L, 4L), }").replace(" ", "") == "{'shape':(3,4),}"
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (2L,), }"
    report = scan_bytes(_raw(header, b"\x00" * 16), "a.npy")
    assert report.findings == ()
