"""Test helpers: a stand-in pickle analyzer, scanning bytes, a raw writer for hostile zips."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlsec.artifact import open_artifact
from mlsec.formats import Format
from mlsec.scan import ScanReport, registry, scan
from mlsec.scan.base import Blob, ScanContext
from mlsec.scan.model import Finding, Severity

# A harmless protocol-2 pickle of `os.system("touch pwned")` — only ever parsed, never loaded.
EVIL_PICKLE = b"\x80\x02cposix\nsystem\nq\x00X\x0b\x00\x00\x00touch pwnedq\x01\x85q\x02Rq\x03."
BENIGN_PICKLE = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s."


def fake_pickle_analyzer(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """Stands in for the real pickle engine: reports every pickle it is handed."""
    data = blob.read()
    sev = Severity.CRITICAL if b"system" in data else Severity.INFO
    yield ctx.finding("TEST-PICKLE", sev, f"pickle {ctx.member} ({len(data)} bytes)")


def install_fake_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry._cache, Format.PICKLE, fake_pickle_analyzer)


def scan_bytes(tmp_path: Path, data: bytes, name: str = "model.bin") -> ScanReport:
    p = tmp_path / name
    p.write_bytes(data)
    return scan(open_artifact(p))


def rules(report: ScanReport) -> set[str]:
    return {f.rule for f in report.findings}


def pickle_members(report: ScanReport) -> list[str]:
    return [f.member or "" for f in report.findings if f.rule == "TEST-PICKLE"]


@dataclass
class Member:
    name: str
    data: bytes
    method: int = 0  # 0 stored, 8 deflate
    flags: int = 0
    local_name: str | None = None
    crc: int | None = None


def build_zip(members: list[Member], *, prefix: bytes = b"", count: int | None = None) -> bytes:
    """A zip written byte by byte, so that tests can make it as wrong as they like."""
    out = bytearray(prefix)
    central = bytearray()
    for m in members:
        payload = m.data
        if m.method == 8:
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            payload = c.compress(m.data) + c.flush()
        crc = zlib.crc32(m.data) if m.crc is None else m.crc
        name = m.name.encode()
        lname = (m.local_name if m.local_name is not None else m.name).encode()
        offset = len(out) - len(prefix)
        out += struct.pack(
            "<4s5H3L2H",
            b"PK\x03\x04",
            20,
            m.flags,
            m.method,
            0,
            0,
            crc,
            len(payload),
            len(m.data),
            len(lname),
            0,
        )
        out += lname + payload
        central += struct.pack(
            "<4s6H3L5H2L",
            b"PK\x01\x02",
            20,
            20,
            m.flags,
            m.method,
            0,
            0,
            crc,
            len(payload),
            len(m.data),
            len(name),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        central += name
    cd_offset = len(out) - len(prefix)
    n = len(members) if count is None else count
    out += central
    out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, n, n, len(central), cd_offset, 0)
    return bytes(out)


def _num(v: int) -> bytes:
    if v < 0x80:
        return bytes([v])
    if v < 0x4000:
        return bytes([0x80 | v >> 8, v & 0xFF])
    return b"\xff" + struct.pack("<Q", v)


def seven_zip(
    packed: bytes, header: bytes = b"\x01\x04\x00\x00", *, bad_crc: bool = False
) -> bytes:
    """Signature header + packed data + next header, with correct CRCs unless told otherwise."""
    start = struct.pack("<QQI", len(packed), len(header), zlib.crc32(header) ^ int(bad_crc))
    sig = b"7z\xbc\xaf\x27\x1c\x00\x04" + struct.pack("<I", zlib.crc32(start)) + start
    return sig + packed + header


def stored_7z(files: list[tuple[str, bytes]]) -> bytes:
    """A 7z with one Copy-coded folder per file and a plain header (no 7z tool needed)."""
    packed = b"".join(d for _, d in files)
    h = b"\x01\x04\x06\x00" + _num(len(files)) + b"\x09" + b"".join(_num(len(d)) for _, d in files)
    h += b"\x00\x07\x0b" + _num(len(files)) + b"\x00" + b"\x01\x01\x00" * len(files)
    h += b"\x0c" + b"".join(_num(len(d)) for _, d in files) + b"\x00\x00"
    names = b"\x00" + b"".join(n.encode("utf-16-le") + b"\x00\x00" for n, _ in files)
    h += b"\x05" + _num(len(files)) + b"\x11" + _num(len(names)) + names + b"\x00\x00"
    return seven_zip(packed, h)
