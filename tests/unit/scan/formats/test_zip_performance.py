"""Scanning a checkpoint reads its index and pickles, never its tensor data (DESIGN.md)."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import pytest
import torch

from mlsec.artifact import open_artifact
from mlsec.scan import scan
from tests.unit.scan.formats.helpers import BENIGN_PICKLE, pickle_members


def _sparse_checkpoint(path: Path, tensor_bytes: int) -> None:
    """A PyTorch-layout zip whose one storage is ``tensor_bytes`` of zeros, written sparsely."""
    members = [("archive/data.pkl", BENIGN_PICKLE), ("archive/version", b"3\n")]
    central = bytearray()
    with open(path, "wb") as f:
        for name, data in members:
            off = f.tell()
            f.write(
                struct.pack(
                    "<4s5H3L2H",
                    b"PK\x03\x04",
                    20,
                    0,
                    0,
                    0,
                    0,
                    zlib.crc32(data),
                    len(data),
                    len(data),
                    len(name),
                    0,
                )
                + name.encode()
                + data
            )
            central += (
                struct.pack(
                    "<4s6H3L5H2L",
                    b"PK\x01\x02",
                    20,
                    20,
                    0,
                    0,
                    0,
                    0,
                    zlib.crc32(data),
                    len(data),
                    len(data),
                    len(name),
                    0,
                    0,
                    0,
                    0,
                    0,
                    off,
                )
                + name.encode()
            )
        name = b"archive/data/0"
        off = f.tell()
        crc = 0  # not checked for tensor storage; computing it would read 1.75 GiB
        f.write(
            struct.pack(
                "<4s5H3L2H",
                b"PK\x03\x04",
                20,
                0,
                0,
                0,
                0,
                crc,
                tensor_bytes,
                tensor_bytes,
                len(name),
                0,
            )
            + name
        )
        f.seek(tensor_bytes, 1)
        central += (
            struct.pack(
                "<4s6H3L5H2L",
                b"PK\x01\x02",
                20,
                20,
                0,
                0,
                0,
                0,
                crc,
                tensor_bytes,
                tensor_bytes,
                len(name),
                0,
                0,
                0,
                0,
                0,
                off,
            )
            + name
        )
        cd = f.tell()
        f.write(central)
        f.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 3, 3, len(central), cd, 0))


def test_1_75_gib_checkpoint_scans_in_a_quarter_second(tmp_path: Path, fake_pickle: None) -> None:
    path = tmp_path / "big.pt"
    _sparse_checkpoint(path, int(1.75 * 1024**3))
    artifact = open_artifact(path)
    assert artifact.files[0].format == "pytorch-zip"
    start = time.perf_counter()
    report = scan(artifact)
    elapsed = time.perf_counter() - start
    assert pickle_members(report) == ["archive/data.pkl"]
    assert [f.rule for f in report.findings] == ["TEST-PICKLE"]
    assert elapsed < 0.25, elapsed


@pytest.mark.slow
def test_20k_tensor_checkpoint_scans_in_a_second(tmp_path: Path) -> None:
    path = tmp_path / "many.pt"
    torch.save({f"w{i}": torch.randn(16) for i in range(20_000)}, path)
    artifact = open_artifact(path)
    start = time.perf_counter()
    report = scan(artifact)
    elapsed = time.perf_counter() - start
    assert report.findings == ()
    assert elapsed < 1.0, elapsed
