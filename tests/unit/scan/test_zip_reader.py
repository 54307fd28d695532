"""One zip central-directory reader (mlsec._zipindex), differentially tested against the readers
the loaders use: Python's zipfile and PyTorch's (miniz, via torch's PyTorchFileReader).

Archives are written at test time by zipfile and torch.save, then altered from bytes."""

from __future__ import annotations

import io
import struct
import warnings
import zipfile
from pathlib import Path

import pytest

from mlsec._zipindex import ZipIndex, read_index
from mlsec.formats import Format, _zip_names, sniff

from .conftest import ScanBytes, rules_of


class _Unseekable(io.RawIOBase):
    """A write-only stream: zipfile then writes data descriptors (flag 0x08, sizes after data)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: object) -> int:
        data = bytes(b)  # type: ignore[call-overload]
        self.buf += data
        return len(data)


def _index(data: bytes) -> ZipIndex:
    return read_index(io.BytesIO(data), len(data))


def _zip(members: list[tuple[str, bytes, int]], **kw: object) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", **kw) as zf:  # type: ignore[arg-type]
        for name, data, method in members:
            zf.writestr(name, data, compress_type=method)
    return buf.getvalue()


_MEMBERS = [
    ("archive/data.pkl", b"\x80\x02}q\x00.", zipfile.ZIP_STORED),
    ("archive/data/0", bytes(range(256)) * 40, zipfile.ZIP_DEFLATED),
    ("archive/bz", b"bzip2 " * 100, zipfile.ZIP_BZIP2),
    ("archive/xz", b"lzma " * 100, zipfile.ZIP_LZMA),
    ("dir/", b"", zipfile.ZIP_STORED),
    ("ünïcode/名前.txt", b"x", zipfile.ZIP_DEFLATED),
]


def _data_descriptors() -> bytes:
    out = _Unseekable()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data, method in _MEMBERS:
            zf.writestr(name, data, compress_type=method)
    return bytes(out.buf)


def _zip64() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", allowZip64=True) as zf:
        for name, data, _method in _MEMBERS[:3]:
            with zf.open(name, "w", force_zip64=True) as w:
                w.write(data)
    return buf.getvalue()


def _duplicates() -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name, and writes it
        return _zip([("data.pkl", b"N.", 0), ("data.pkl", b"\x80\x02N.", 0), ("version", b"3", 0)])


ARCHIVES = {
    "plain": lambda: _zip(_MEMBERS),
    "comment": lambda: _zip(_MEMBERS[:2])[:-2] + struct.pack("<H", 9) + b"a comment",
    "data-descriptors": _data_descriptors,
    "zip64": _zip64,
    "prepended": lambda: b"#!/bin/sh\necho hello\n" * 20 + _zip(_MEMBERS),
    "appended": lambda: _zip(_MEMBERS) + b"trailing bytes",
    "duplicates": _duplicates,
    "empty": lambda: _zip([]),
}


@pytest.mark.parametrize("kind", sorted(ARCHIVES))
def test_index_agrees_with_zipfile(kind: str) -> None:
    data = ARCHIVES[kind]()
    ours = _index(data)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        theirs = zf.infolist()
    assert [e.name for e in ours.entries] == [i.filename for i in theirs]
    for e, i in zip(ours.entries, theirs, strict=True):
        assert (e.method, e.crc, e.csize, e.usize) == (
            i.compress_type,
            i.CRC,
            i.compress_size,
            i.file_size,
        ), e.name
        assert e.local_offset == i.header_offset, e.name
        assert e.flags == i.flag_bits, e.name
    assert ours.declared_count == len(theirs)


@pytest.mark.parametrize("kind", sorted(ARCHIVES))
def test_sniffer_and_scanner_read_the_same_names(tmp_path: Path, kind: str) -> None:
    data = ARCHIVES[kind]()
    p = tmp_path / "a.zip"
    p.write_bytes(data)
    with open(p, "rb") as f:
        assert _zip_names(f) == [e.name for e in _index(data).entries]


def test_data_descriptor_archive_scans_clean(scan_bytes: ScanBytes) -> None:
    data = _data_descriptors()
    assert data[6] & 0x08  # the local header defers its sizes
    report = scan_bytes(data, "bundle.zip")
    assert not report.findings, report.findings


def _torch_records(path: Path) -> list[str]:
    torch = pytest.importorskip("torch")
    reader = torch._C.PyTorchFileReader(str(path))
    return sorted(reader.get_all_records())


def _torch_file(tmp_path: Path, n: int = 40) -> Path:
    torch = pytest.importorskip("torch")
    p = tmp_path / "model.pt"
    torch.save({f"layer{i}.weight": torch.full((3,), float(i)) for i in range(n)}, p)
    return p


def test_index_agrees_with_torch_reader(tmp_path: Path) -> None:
    p = _torch_file(tmp_path)
    data = p.read_bytes()
    names = [e.name for e in _index(data).entries]
    prefix = names[0].split("/", 1)[0] + "/"
    assert all(n.startswith(prefix) for n in names)
    assert sorted(n[len(prefix) :] for n in names) == _torch_records(p)
    assert sniff(p) is Format.PYTORCH_ZIP


def test_torch_save_scans_clean(tmp_path: Path, scan_bytes: ScanBytes) -> None:
    p = _torch_file(tmp_path, 300)
    report = scan_bytes(p.read_bytes(), "model.pt")
    assert report.files[0].format == "pytorch-zip"
    assert not report.findings, report.findings


def _rename_local(data: bytes, old: bytes, new: bytes) -> bytes:
    """Rename a member in its local header only (same length): the central directory keeps
    the old name."""
    assert len(old) == len(new)
    pos = 0
    while True:
        pos = data.index(b"PK\x03\x04", pos)
        (nlen,) = struct.unpack_from("<H", data, pos + 26)
        if data[pos + 30 : pos + 30 + nlen].endswith(old):
            start = pos + 30 + nlen - len(old)
            return data[:start] + new + data[start + len(old) :]
        pos += 4


def test_local_central_name_mismatch_is_a_finding(tmp_path: Path, scan_bytes: ScanBytes) -> None:
    p = _torch_file(tmp_path)
    data = _rename_local(p.read_bytes(), b"data.pkl", b"data.txt")
    q = tmp_path / "renamed.pt"
    q.write_bytes(data)
    # PyTorch's reader goes by the central directory: the record keeps its name.
    assert "data.pkl" in _torch_records(q)
    report = scan_bytes(data, "model.pt")
    assert "ZIP-LOCAL-HEADER" in rules_of(report)
    assert report.files[0].format == "pytorch-zip"  # sniffed by the same (central) names


def test_duplicate_names_are_both_scanned(scan_bytes: ScanBytes) -> None:
    report = scan_bytes(_duplicates(), "model.zip")
    assert "ZIP-DUPLICATE-NAME" in rules_of(report)


def test_prepended_data_is_reported(scan_bytes: ScanBytes) -> None:
    report = scan_bytes(ARCHIVES["prepended"](), "model.zip")
    assert "ZIP-PREPENDED-DATA" in rules_of(report)
    assert _index(ARCHIVES["prepended"]()).concat > 0
