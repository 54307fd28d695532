"""Scanning a checkpoint reads its index and pickles, never its tensor data (DESIGN.md)."""

from __future__ import annotations

import struct
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


def _io_counters() -> tuple[int, int]:
    """Bytes this process read through syscalls, and its minor page faults (mmap reads)."""
    import resource

    rchar = 0
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            rchar = int(line.split()[1])
    return rchar, resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def test_1_75_gib_checkpoint_tensor_data_is_never_read(tmp_path: Path, fake_pickle: None) -> None:
    # Speed is measured by benchmarks/bench_scan.py; here we check the reason it is fast: the
    # scan reads the zip index and the pickle, not the 1.75 GiB of tensor storage (sparse file).
    path = tmp_path / "big.pt"
    _sparse_checkpoint(path, int(1.75 * 1024**3))
    artifact = open_artifact(path)
    assert artifact.files[0].format == "pytorch-zip"
    read0, faults0 = _io_counters()
    report = scan(artifact)
    read1, faults1 = _io_counters()
    assert pickle_members(report) == ["archive/data.pkl"]
    assert [f.rule for f in report.findings] == ["TEST-PICKLE"]
    assert read1 - read0 < 8 * 1024 * 1024, read1 - read0
    assert faults1 - faults0 < 8 * 1024 * 1024 // 4096, faults1 - faults0


@pytest.mark.slow
def test_20k_tensor_checkpoint_gives_no_false_alarm(tmp_path: Path) -> None:
    path = tmp_path / "many.pt"
    torch.save({f"w{i}": torch.randn(16) for i in range(20_000)}, path)
    report = scan(open_artifact(path))
    assert report.findings == ()
    assert report.files[0].format == "pytorch-zip"
