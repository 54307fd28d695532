"""safetensors structure checks, on files written by the real library and by hand."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save

from tests.unit.scan.formats.helpers import EVIL_PICKLE, pickle_members, rules, scan_bytes


def _st(header: dict, data: bytes, pad: bool = True) -> bytes:
    raw = json.dumps(header).encode()
    if pad:
        raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def test_real_file_is_clean(tmp_path: Path) -> None:
    data = save(
        {"w": np.random.rand(16, 8).astype(np.float32), "b": np.zeros(3, dtype=np.int64)},
        metadata={"format": "pt"},
    )
    report = scan_bytes(tmp_path, data, "model.safetensors")
    assert report.files[0].format == "safetensors"
    assert report.findings == ()


def test_empty_tensor_and_scalar(tmp_path: Path) -> None:
    data = save({"e": np.zeros((0, 4), dtype=np.float16), "s": np.array(1.5, dtype=np.float64)})
    assert scan_bytes(tmp_path, data).findings == ()


@pytest.mark.parametrize(
    ("header", "data", "rule"),
    [
        (
            {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}},
            b"\0" * 8,
            "SAFETENSORS-INVALID-TENSOR",
        ),
        (
            {"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}},
            b"\0" * 8,
            "SAFETENSORS-INVALID-TENSOR",
        ),
        (
            {"a": {"dtype": "PY", "shape": [2], "data_offsets": [0, 8]}},
            b"\0" * 8,
            "SAFETENSORS-INVALID-TENSOR",
        ),
        (
            {"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}},
            b"\0" * 8,
            "SAFETENSORS-INVALID-TENSOR",
        ),
        (
            {"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}},
            b"\0" * 8,
            "SAFETENSORS-INVALID-TENSOR",
        ),
        (
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            },
            b"\0" * 12,
            "SAFETENSORS-OVERLAP",
        ),
        (
            {"a": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}},
            b"\0" * 12,
            "SAFETENSORS-HIDDEN-DATA",
        ),
        (
            {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}},
            b"\0" * 12,
            "SAFETENSORS-HIDDEN-DATA",
        ),
        ({"__metadata__": {"k": 1}}, b"", "SAFETENSORS-INVALID-METADATA"),
    ],
)
def test_invalid_layouts(tmp_path: Path, header: dict, data: bytes, rule: str) -> None:
    assert rule in rules(scan_bytes(tmp_path, _st(header, data)))


def test_out_of_bounds_is_high(tmp_path: Path) -> None:
    h = {"a": {"dtype": "U8", "shape": [1000], "data_offsets": [0, 1000]}}
    report = scan_bytes(tmp_path, _st(h, b"\0" * 10))
    assert any(f.severity == "high" for f in report.findings)


@pytest.mark.parametrize(
    "raw",
    [
        struct.pack("<Q", 10**6) + b"{" + b" " * 20,  # length beyond the file
        struct.pack("<Q", 12) + b'{"a": [1, 2',  # not JSON
        struct.pack("<Q", 12) + b"{} {}       ",  # trailing garbage in JSON
        struct.pack("<Q", 25) + b'{"a": 1, "a": 2}         ',  # duplicate keys
    ],
)
def test_unparseable_headers(tmp_path: Path, raw: bytes) -> None:
    report = scan_bytes(tmp_path, raw)
    assert report.files[0].format == "safetensors"
    assert "PARSE-ERROR" in rules(report)


def test_pickle_hidden_after_tensors_is_scanned(tmp_path: Path, fake_pickle: None) -> None:
    h = {"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}}
    report = scan_bytes(tmp_path, _st(h, b"\1\2\3\4" + EVIL_PICKLE))
    assert "SAFETENSORS-HIDDEN-DATA" in rules(report)
    assert len(pickle_members(report)) == 1
