"""The zip central directory: end records (zip64 included), directory records, their extra
fields. The one reader of these bytes in mlsec: format sniffing (:mod:`mlsec.formats`) and the zip
scanner (:mod:`mlsec.scan.formats.zip`) both use it, so that they cannot disagree on what an
archive holds (two parsers of the same bytes that differ are how scanners are bypassed).

Read as PyTorch's miniz and Python's :mod:`zipfile` read it: the last end record within the
comment window, the zip64 record before the locator (where the locator points is noted when it
differs), offsets shifted by data prepended to the archive. Every offset is checked against the
file's size; malformed input raises :class:`zipfile.BadZipFile`.
"""

from __future__ import annotations

import struct
import zipfile
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

__all__ = ["CEN", "LOC", "LOC_FMT", "ZipEntry", "ZipIndex", "read_at", "read_index"]

_EOCD = b"PK\x05\x06"
_EOCD64 = b"PK\x06\x06"
_LOC64 = b"PK\x06\x07"
CEN = b"PK\x01\x02"
LOC = b"PK\x03\x04"
_CEN_FMT = struct.Struct("<4s6H3L5H2L")  # 46 bytes
LOC_FMT = struct.Struct("<4s5H3L2H")  # 30 bytes
_MAX_DIRECTORY = 256 * 1024 * 1024


class ZipEntry(NamedTuple):
    """One central-directory record (a named tuple: immutable, and cheap to build for the
    tens of thousands of records of a large checkpoint)."""

    number: int  # position in the central directory
    name: str
    raw_name: bytes
    flags: int
    method: int
    crc: int
    csize: int
    usize: int
    local_offset: int  # absolute, prefix (concatenation offset) included
    external_attr: int = 0
    unicode_name: str | None = None  # Info-ZIP Unicode Path extra field (0x7075), if any

    @property
    def is_symlink(self) -> bool:
        return (self.external_attr >> 16) & 0o170000 == 0o120000


@dataclass(frozen=True, slots=True)
class ZipIndex:
    """A parsed central directory."""

    entries: tuple[ZipEntry, ...]
    declared_count: int
    prefix: int  # bytes before the first local header (or before the directory, if empty)
    concat: int  # offset every recorded offset is shifted by (data prepended to the zip)
    trailing: int  # bytes after the end-of-central-directory record and its comment
    truncated: bool = False  # the directory holds more records than were parsed
    zip64_elsewhere: bool = False  # the zip64 locator points at another record than the one read


def read_at(f: BinaryIO, offset: int, n: int) -> bytes:
    f.seek(offset)
    return f.read(n)


def _unicode_path(extra: bytes) -> str | None:
    pos = 0
    while pos + 4 <= len(extra):
        tag, ln = struct.unpack_from("<HH", extra, pos)
        if tag == 0x7075 and ln >= 5:
            return extra[pos + 9 : pos + 4 + ln].decode("utf-8", "replace")
        pos += 4 + ln
    return None


def _zip64_extra(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, ln = struct.unpack_from("<HH", extra, pos)
        if tag == 1:
            data = extra[pos + 4 : pos + 4 + ln]
            vals = [struct.unpack_from("<Q", data, i)[0] for i in range(0, len(data) - 7, 8)]
            if usize == 0xFFFFFFFF and vals:
                usize = vals.pop(0)
            if csize == 0xFFFFFFFF and vals:
                csize = vals.pop(0)
            if offset == 0xFFFFFFFF and vals:
                offset = vals.pop(0)
            break
        pos += 4 + ln
    return usize, csize, offset


def read_index(f: BinaryIO, size: int, max_entries: int | None = None) -> ZipIndex:
    """Parse the end record(s) and the central directory (at most ``max_entries`` records).
    Raises BadZipFile when hopeless."""
    tail_len = min(size, 22 + 65535 + 20)
    tail = read_at(f, size - tail_len, tail_len)
    pos = tail.rfind(_EOCD)
    if pos < 0 or pos + 22 > len(tail):
        raise zipfile.BadZipFile("no end-of-central-directory record")
    eocd_pos = size - tail_len + pos
    (_sig, disk, cd_disk, _n_disk, n_total, cd_size, cd_offset, comment_len) = struct.unpack_from(
        "<4s4H2LH", tail, pos
    )
    trailing = max(0, size - (eocd_pos + 22 + comment_len))
    cd_end = eocd_pos
    zip64_elsewhere = False
    if pos >= 20 and tail[pos - 20 : pos - 16] == _LOC64:
        rec_pos = eocd_pos - 20 - 56
        # Python reads the zip64 record just before the locator; miniz (PyTorch) seeks to the
        # offset the locator records. Two records mean two central directories.
        (located_at,) = struct.unpack_from("<Q", tail, pos - 12)
        rec = read_at(f, rec_pos, 56) if rec_pos >= 0 else b""
        if len(rec) != 56 or rec[:4] != _EOCD64:
            raise zipfile.BadZipFile("zip64 end record missing")
        _, _, _, _, disk, cd_disk, _, n_total, cd_size, cd_offset = struct.unpack("<4sQ2H2L4Q", rec)
        cd_end = rec_pos
        zip64_elsewhere = located_at != rec_pos
    if disk != 0 or cd_disk != 0:
        raise zipfile.BadZipFile("multi-disk zip archives are not supported")
    concat = cd_end - cd_size - cd_offset
    if concat < 0:
        raise zipfile.BadZipFile("central directory offset points outside the file")
    if cd_size > _MAX_DIRECTORY:
        raise zipfile.BadZipFile(f"central directory of {cd_size} bytes is too large")
    cd = read_at(f, cd_offset + concat, cd_size)
    if len(cd) != cd_size:
        raise zipfile.BadZipFile("truncated central directory")
    entries: list[ZipEntry] = []
    p = 0
    truncated = False
    while p < cd_size:
        if max_entries is not None and len(entries) >= max_entries:
            truncated = True
            break
        if p + 46 > cd_size:
            raise zipfile.BadZipFile("truncated central directory record")
        (sig, _vm, _vn, flags, method, _t, _d, crc, csize, usize, nlen, elen, clen, *_rest) = (
            _CEN_FMT.unpack_from(cd, p)
        )
        if sig != CEN:
            raise zipfile.BadZipFile("bad central directory record signature")
        raw = cd[p + 46 : p + 46 + nlen]
        extra = cd[p + 46 + nlen : p + 46 + nlen + elen]
        external_attr, offset = _rest[-2], _rest[-1]
        if 0xFFFFFFFF in (usize, csize, offset):
            usize, csize, offset = _zip64_extra(extra, usize, csize, offset)
        name = raw.decode("utf-8", "replace") if flags & 0x800 else raw.decode("cp437")
        entries.append(
            ZipEntry(
                len(entries),
                name,
                raw,
                flags,
                method,
                crc,
                csize,
                usize,
                offset + concat,
                external_attr,
                _unicode_path(extra) if b"up" in extra else None,
            )
        )
        p += 46 + nlen + elen + clen
    first = min((e.local_offset for e in entries), default=cd_offset + concat)
    return ZipIndex(tuple(entries), n_total, first, concat, trailing, truncated, zip64_elsewhere)
