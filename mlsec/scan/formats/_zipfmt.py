"""The zip format itself: end records, the central directory, local headers and member data.

The central directory is read by :mod:`mlsec._zipindex` (the one reader, shared with format
sniffing); this module reads local headers and member data. Parsed here rather than with
:mod:`zipfile` (see :mod:`mlsec.scan.formats.zip` for why). Every offset read from the file is
checked against its size; malformed input raises BadZipFile.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from mlsec._zipindex import LOC, LOC_FMT, ZipEntry, ZipIndex, read_at, read_index
from mlsec.scan.base import Blob
from mlsec.scan.formats import _inflate
from mlsec.scan.formats._members import HEAD_SIZE

METHODS = {0: "stored", 8: "deflate", 12: "bzip2", 14: "zip-lzma"}

__all__ = [
    "METHODS",
    "Located",
    "ZipEntry",
    "ZipIndex",
    "locate",
    "member_stream",
    "range_reader",
    "read_at",
    "read_index",
    "read_member",
]


@dataclass(slots=True)
class Located:
    entry: ZipEntry
    data_offset: int
    head: bytes


def locate(f: BinaryIO, size: int, e: ZipEntry) -> tuple[Located | None, str | None]:
    """Read a member's local header and the first bytes of its data. Returns the located member
    (None when its data cannot be found) and what is wrong with the header, if anything."""
    buf = read_at(f, e.local_offset, 30 + len(e.raw_name) + 64 + HEAD_SIZE)
    if len(buf) < 30 or buf[:4] != LOC:
        return None, "has no valid local header at its recorded offset"
    _sig, _v, _fl, _m, _t, _d, _crc, _cs, _us, nlen, elen = LOC_FMT.unpack_from(buf)
    local_name = buf[30 : 30 + nlen]
    data_offset = e.local_offset + 30 + nlen + elen
    if data_offset + e.csize > size:
        return None, "extends past the end of the file"
    start = 30 + nlen + elen
    head = buf[start : start + HEAD_SIZE]
    if len(head) < min(HEAD_SIZE, e.csize):
        head = read_at(f, data_offset, min(HEAD_SIZE, e.csize))
    problem = None
    if local_name != e.raw_name:
        # PyTorch (miniz) goes by the central directory and reads the data all the same.
        problem = f"is named {local_name.decode('utf-8', 'replace')!r} in its local header"
    return Located(e, data_offset, head[: e.csize]), problem


def range_reader(f: BinaryIO, offset: int, length: int) -> Callable[[int], bytes]:
    state = [offset, length]

    def read(n: int) -> bytes:
        n = min(n, state[1])
        if n <= 0:
            return b""
        f.seek(state[0])
        data = f.read(n)
        state[0] += len(data)
        state[1] -= len(data)
        return data

    return read


def member_stream(
    f: BinaryIO, loc: Located
) -> tuple[Callable[[int], bytes], Callable[[], _inflate.Decompressor]]:
    e = loc.entry
    method = METHODS[e.method]
    if method == "zip-lzma":
        props = read_at(f, loc.data_offset, 9)
        read = range_reader(f, loc.data_offset + 4 + int.from_bytes(props[2:4], "little"), e.csize)
        return read, lambda: _inflate.new_decompressor("zip-lzma", props)
    return range_reader(f, loc.data_offset, e.csize), lambda: _inflate.new_decompressor(method)


def read_member(blob: Blob, index: ZipIndex, entry: ZipEntry, cap: int) -> bytes:
    """The decompressed bytes of one member, at most ``cap`` (for small metadata members)."""
    with blob.open() as f:
        loc, problem = locate(f, blob.size, entry)
        if loc is None:
            raise zipfile.BadZipFile(f"{entry.name} {problem}")
        if entry.method == 0:
            return read_at(f, loc.data_offset, min(cap, entry.csize))
        if entry.method not in METHODS:
            raise zipfile.BadZipFile(f"{entry.name}: cannot decompress (method {entry.method})")
        read, factory = member_stream(f, loc)
        return _inflate.inflate(read, factory, cap=cap).data
