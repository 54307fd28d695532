"""Arbitrary and mutated bytes through every container/format analyzer: findings only, never an
exception, a hang or unbounded memory."""

from __future__ import annotations

import gzip
import io
import json
import struct
import tarfile
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save

from mlsec.formats import Format
from mlsec.scan import registry
from mlsec.scan.base import Blob, Limits, ScanContext, ScanOptions
from mlsec.scan.engine import _dispatch
from tests.unit.scan.formats.helpers import (
    EVIL_PICKLE,
    Member,
    build_zip,
    fake_pickle_analyzer,
    stored_7z,
)
from tests.unit.scan.formats.test_gguf import _base_kvs, gguf
from tests.unit.scan.formats.test_savedmodel import TF2_STANDARD, _saved_model

FORMATS = [
    Format.ZIP,
    Format.PYTORCH_ZIP,
    Format.KERAS_ZIP,
    Format.NPZ,
    Format.GZIP,
    Format.ZLIB,
    Format.BZIP2,
    Format.XZ,
    Format.SAFETENSORS,
    Format.ONNX,
    Format.HDF5,
    Format.GGUF,
    Format.TAR,
    Format.TF_SAVEDMODEL,
    Format.PROTOBUF,
    Format.SEVEN_ZIP,
    Format.JSON,
    Format.TEXT,
]

LIMITS = Limits(max_member_size=4 << 20, max_total_extracted=16 << 20, max_members=500)


def _onnx() -> bytes:
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["y"], domain="custom.x")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    return helper.make_model(g).SerializeToString()


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("pickle", EVIL_PICKLE), ("../x", b"y")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _keras() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", json.dumps({"class_name": "Lambda", "config": {}}))
        zf.writestr("metadata.json", "{}")
        zf.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    return buf.getvalue()


SEEDS: dict[Format, bytes] = {
    Format.ZIP: build_zip(
        [Member("a/data.pkl", EVIL_PICKLE, method=8), Member("a/data/0", b"\x80\x02" * 8)]
    ),
    Format.KERAS_ZIP: _keras(),
    Format.GZIP: gzip.compress(_tar()),  # a .tar.gz: the streamed tar path
    Format.SAFETENSORS: save({"a": np.arange(6, dtype=np.int16)}, metadata={"k": "v"}),
    Format.ONNX: _onnx(),
    Format.GGUF: gguf(_base_kvs(), [("t", [2, 2], 0)]),
    Format.TAR: _tar(),
    Format.TF_SAVEDMODEL: _saved_model(TF2_STANDARD),
    Format.SEVEN_ZIP: stored_7z([("a/data.pkl", EVIL_PICKLE), ("../b", b"x")]),
    Format.HDF5: b"\x89HDF\r\n\x1a\n"
    + b'\0{"class_name": "Lambda", "config": {"function_type": 1}}',
}
SEEDS[Format.JSON] = json.dumps(
    {"class_name": "Lambda", "config": {"function": ["x"]}, "chat_template": "{{ x }}"}
).encode()
SEEDS[Format.TEXT] = b"{{ lipsum.__globals__ }}"
SEEDS[Format.PYTORCH_ZIP] = SEEDS[Format.NPZ] = SEEDS[Format.ZIP]
SEEDS[Format.PROTOBUF] = SEEDS[Format.TF_SAVEDMODEL]
SEEDS[Format.ZLIB] = __import__("zlib").compress(EVIL_PICKLE)
SEEDS[Format.BZIP2] = __import__("bz2").compress(EVIL_PICKLE)
SEEDS[Format.XZ] = __import__("lzma").compress(EVIL_PICKLE)


def _run(fmt: Format, data: bytes) -> None:
    # Nested pickles go to the stand-in engine so that the dispatch paths are exercised too.
    saved = registry._cache.get(Format.PICKLE)
    registry._cache[Format.PICKLE] = fake_pickle_analyzer
    try:
        ctx = ScanContext(
            file="fuzz", options=ScanOptions(limits=LIMITS), format=fmt, dispatch=_dispatch
        )
        findings = list(_dispatch(Blob("fuzz", data=data), ctx))
    finally:
        if saved is None:
            registry._cache.pop(Format.PICKLE, None)
        else:
            registry._cache[Format.PICKLE] = saved
    assert all(f.rule for f in findings)


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
@settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=2048))
def test_arbitrary_bytes(fmt: Format, data: bytes) -> None:
    _run(fmt, data)


@st.composite
def _mutations(draw: st.DrawFn, seed: bytes) -> bytes:
    buf = bytearray(seed)
    for _ in range(draw(st.integers(1, 8))):
        if not buf:
            break
        pos = draw(st.integers(0, len(buf) - 1))
        op = draw(st.sampled_from(["flip", "byte", "cut", "dup", "ff"]))
        if op == "flip":
            buf[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte":
            buf[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del buf[pos : pos + draw(st.integers(1, 64))]
        elif op == "dup":
            buf[pos:pos] = buf[pos : pos + draw(st.integers(1, 64))]
        else:
            buf[pos : pos + 8] = b"\xff" * 8
    return bytes(buf)


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
@settings(max_examples=120, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_valid_files(fmt: Format, data: st.DataObject) -> None:
    _run(fmt, data.draw(_mutations(SEEDS[fmt])))


def test_seeds_are_what_they_claim() -> None:
    from mlsec.formats import sniff_bytes

    for fmt in (Format.GZIP, Format.SAFETENSORS, Format.ONNX, Format.GGUF, Format.TAR):
        assert sniff_bytes(SEEDS[fmt]) is fmt
    assert struct.unpack("<Q", SEEDS[Format.SAFETENSORS][:8])[0] > 0


def test_bombs_stay_within_memory(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # 256 MiB of zeros behind a pickle header, deflated, bzip2'd and gzipped: default limits,
    # the ratio check stops each well before the output gets large.
    import bz2
    import tracemalloc

    from mlsec.artifact import open_artifact
    from mlsec.scan import scan

    payload = EVIL_PICKLE + b"\x00" * (256 << 20)
    files = {
        "bomb.zip": build_zip([Member("data.pkl", payload, method=8)]),
        "bomb.gz": gzip.compress(payload, 9),
        "bomb.bz2": bz2.compress(payload, 9),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    del files, payload
    registry._cache[Format.PICKLE] = fake_pickle_analyzer
    tracemalloc.start()
    try:
        report = scan(open_artifact(tmp_path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        registry._cache.pop(Format.PICKLE, None)
    assert peak < 200 << 20, peak
    assert {f.rule for f in report.findings} >= {"ZIP-BOMB", "DECOMPRESSION-BOMB"}
