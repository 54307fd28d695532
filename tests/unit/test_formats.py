"""Format detection from content: every format the issue names, and never by file name alone."""

from __future__ import annotations

import gzip
import io
import json
import lzma
import pickle
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from mlsec.demo import write_safetensors
from mlsec.formats import Format, sniff, sniff_bytes


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


@pytest.mark.parametrize("protocol", range(6))
def test_pickle_every_protocol_any_name(tmp_path, protocol):
    data = pickle.dumps({"a": [1, 2.5, "x"], "b": (None, True)}, protocol=protocol)
    assert sniff(_write(tmp_path, "README.md", data)) is Format.PICKLE


def test_text_is_not_pickle(tmp_path):
    assert sniff(_write(tmp_path, "notes", b"I am a text file\nwith (parens) and ]brackets\n")) is (
        Format.TEXT
    )


def test_pytorch_zip_checkpoint(tmp_path):
    import torch

    p = tmp_path / "weights.bin"
    torch.save({"w": torch.zeros(3)}, p)
    assert sniff(p) is Format.PYTORCH_ZIP


def test_legacy_pytorch_checkpoint_is_pickle(tmp_path):
    import torch

    p = tmp_path / "legacy.pt"
    torch.save({"w": torch.zeros(3)}, p, _use_new_zipfile_serialization=False)
    assert sniff(p) is Format.PICKLE


def test_npz_and_npy(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.arange(3), y=np.ones(2))
    np.save(tmp_path / "a.npy", np.arange(3))
    assert sniff(tmp_path / "a.npz") is Format.NPZ
    assert sniff(tmp_path / "a.npy") is Format.NUMPY


def test_keras_v3_zip_and_generic_zip(tmp_path):
    k = tmp_path / "model.keras"
    with zipfile.ZipFile(k, "w") as zf:
        zf.writestr("metadata.json", "{}")
        zf.writestr("config.json", "{}")
        zf.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n")
    g = tmp_path / "bundle.dat"
    with zipfile.ZipFile(g, "w") as zf:
        zf.writestr("readme.txt", "hi")
    assert sniff(k) is Format.KERAS_ZIP
    assert sniff(g) is Format.ZIP


def test_zip_with_data_before_first_header(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(1))
    assert sniff(_write(tmp_path, "x.bin", b"JUNK" * 10 + buf.getvalue())).is_archive


def test_tar_gzip_xz_zlib(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("a.txt")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
    assert sniff(_write(tmp_path, "t", buf.getvalue())) is Format.TAR
    assert sniff(_write(tmp_path, "g", gzip.compress(b"x" * 100))) is Format.GZIP
    assert sniff(_write(tmp_path, "x", lzma.compress(b"x" * 100))) is Format.XZ
    assert sniff(_write(tmp_path, "z", zlib.compress(pickle.dumps([1, 2])))) is Format.ZLIB


def test_joblib_compressed_is_zlib(tmp_path):
    import joblib

    p = tmp_path / "model.joblib"
    joblib.dump({"a": np.arange(10)}, p, compress=3)
    assert sniff(p) is Format.ZLIB


def test_magic_number_formats(tmp_path):
    assert sniff(_write(tmp_path, "a", b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\x00" * 24)) is (
        Format.SEVEN_ZIP
    )
    gguf = b"GGUF" + struct.pack("<IQQ", 3, 0, 0)
    assert sniff(_write(tmp_path, "m", gguf)) is Format.GGUF
    assert sniff(_write(tmp_path, "e", b"")) is Format.EMPTY
    assert sniff(_write(tmp_path, "r", bytes(range(256)) * 4)) is Format.UNKNOWN


def test_hdf5_with_user_block(tmp_path):
    import h5py

    plain = tmp_path / "w.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = np.arange(3)
    blocked = tmp_path / "u.h5"
    with h5py.File(blocked, "w", userblock_size=512) as f:
        f["x"] = np.arange(3)
    assert sniff(plain) is Format.HDF5
    assert sniff(blocked) is Format.HDF5


def test_safetensors_real_and_handmade(tmp_path):
    from safetensors.numpy import save_file

    save_file({"w": np.zeros((2, 2), dtype=np.float32)}, tmp_path / "a.bin")
    write_safetensors(tmp_path / "b", {"t": ("F32", [1], b"\0\0\0\0")})
    assert sniff(tmp_path / "a.bin") is Format.SAFETENSORS
    assert sniff(tmp_path / "b") is Format.SAFETENSORS


def test_onnx_model(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    p = tmp_path / "weights.dat"  # not named .onnx on purpose
    onnx.save(helper.make_model(graph), p)
    assert sniff(p) is Format.ONNX


def test_savedmodel_pb(tmp_path):
    # SavedModel proto: field 1 (schema version, varint) then field 2 (meta_graphs, bytes).
    data = b"\x08\x01\x12\x04\x0a\x02ab"
    assert sniff(_write(tmp_path, "saved_model.pb", data)) is Format.TF_SAVEDMODEL


def test_json_yaml_text(tmp_path):
    assert sniff(_write(tmp_path, "model.bin", json.dumps({"a": 1}).encode())) is Format.JSON
    assert sniff(_write(tmp_path, "cfg.yaml", b"a: 1\nb: [2]\n")) is Format.YAML
    assert sniff(_write(tmp_path, "cfg.txt", b"a: 1\n")) is Format.TEXT


def test_sniff_bytes_never_raises_on_garbage():
    import random

    rng = random.Random(1)
    for n in (1, 2, 7, 100, 5000):
        for _ in range(50):
            assert isinstance(sniff_bytes(rng.randbytes(n)), Format)


def test_zip_kind_reads_the_central_directory_itself_and_agrees_with_zipfile(tmp_path):
    """PyTorch writes zip64 end records; a comment or a prefix is read by the same reader."""
    import torch

    from mlsec.formats import _zip_names

    torch.save({f"w{i}": torch.zeros(1) for i in range(300)}, tmp_path / "m.pt")
    np.savez(tmp_path / "a.npz", x=np.arange(3))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ünïcode.txt", "x")
        zf.comment = b"a comment after the end record"
    (tmp_path / "c.zip").write_bytes(buf.getvalue())
    (tmp_path / "p.zip").write_bytes(b"prefix" * 10 + buf.getvalue())
    for name in ("m.pt", "a.npz", "c.zip", "p.zip"):
        with open(tmp_path / name, "rb") as f:
            assert _zip_names(f) == zipfile.ZipFile(f).namelist(), name
    assert sniff(tmp_path / "m.pt") is Format.PYTORCH_ZIP


def test_zip_names_never_raise_on_a_mangled_central_directory(tmp_path):
    import random

    from mlsec.formats import _zip_names

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(20):
            zf.writestr(f"archive/data/{i}", b"x" * 10)
    good = buf.getvalue()
    rng = random.Random(7)
    for _ in range(300):
        bad = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            bad[rng.randrange(len(bad) - 200, len(bad))] = rng.randrange(256)
        (tmp_path / "z").write_bytes(bytes(bad))
        with open(tmp_path / "z", "rb") as f:
            assert isinstance(_zip_names(f), list)
