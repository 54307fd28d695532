"""Zip containers: generic zips, PyTorch checkpoints, NumPy ``.npz`` and the zip layer of Keras v3.

The central directory is parsed here (not with :mod:`zipfile`): it is faster on checkpoints with
tens of thousands of members, and it lets us see what ``zipfile`` hides or refuses — duplicate
names (PyTorch reads the first, ``zipfile`` the last), local headers that disagree with the
directory, bad CRCs (``zipfile`` refuses, PyTorch loads), data before the first local header (a
file PyTorch loads as a legacy pickle while a zip-aware scanner looks only at the members).

Each member is judged by a small head of its bytes; only members whose content sniffs as a format
with an analyzer are handed on. Stored members are handed on as windows of the file, never copied;
compressed ones are decompressed within the size, ratio and total-extraction limits.
"""

from __future__ import annotations

import itertools
import lzma
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from mlsec.formats import PREFIX_SIZE, Format
from mlsec.scan.base import Blob, ScanContext
from mlsec.scan.formats import _inflate
from mlsec.scan.formats._members import (
    HEAD_SIZE,
    FindingCap,
    budget_exhausted,
    limit_rule,
    member_limit,
    needs_prefix,
    plausible_pickle,
    sniff_member,
    unsafe_path,
    worth_dispatching,
)
from mlsec.scan.model import Finding, Severity

__all__ = ["ZipEntry", "ZipIndex", "analyze_zip", "read_index", "read_member"]

_EOCD = b"PK\x05\x06"
_EOCD64 = b"PK\x06\x06"
_LOC64 = b"PK\x06\x07"
_CEN = b"PK\x01\x02"
_LOC = b"PK\x03\x04"
_CEN_FMT = struct.Struct("<4s6H3L5H2L")  # 46 bytes
_LOC_FMT = struct.Struct("<4s5H3L2H")  # 30 bytes
_MAX_DIRECTORY = 256 * 1024 * 1024
_CRC_CHECK_MAX = 64 * 1024 * 1024

_METHODS = {0: "stored", 8: "deflate", 12: "bzip2", 14: "zip-lzma"}
# What reading one member can raise; caught per member so that the walk goes on.
_MEMBER_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    OSError,
    EOFError,
    ValueError,
    IndexError,
    struct.error,
)
# PyTorch tensor storage: raw bytes the loader never unpickles.
_TENSOR_STORAGE = re.compile(r"^(?:[^/]+/)?data/\d+$")


@dataclass(frozen=True, slots=True)
class ZipEntry:
    """One central-directory record."""

    index: int
    name: str
    raw_name: bytes
    flags: int
    method: int
    crc: int
    csize: int
    usize: int
    local_offset: int  # absolute, prefix (concatenation offset) included
    external_attr: int = 0

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


def _read_at(f: BinaryIO, offset: int, n: int) -> bytes:
    f.seek(offset)
    return f.read(n)


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
    tail = _read_at(f, size - tail_len, tail_len)
    pos = tail.rfind(_EOCD)
    if pos < 0 or pos + 22 > len(tail):
        raise zipfile.BadZipFile("no end-of-central-directory record")
    eocd_pos = size - tail_len + pos
    (_sig, disk, cd_disk, _n_disk, n_total, cd_size, cd_offset, comment_len) = struct.unpack_from(
        "<4s4H2LH", tail, pos
    )
    trailing = max(0, size - (eocd_pos + 22 + comment_len))
    cd_end = eocd_pos
    if pos >= 20 and tail[pos - 20 : pos - 16] == _LOC64:
        rec_pos = eocd_pos - 20 - 56
        rec = _read_at(f, rec_pos, 56) if rec_pos >= 0 else b""
        if len(rec) != 56 or rec[:4] != _EOCD64:
            raise zipfile.BadZipFile("zip64 end record missing")
        _, _, _, _, disk, cd_disk, _, n_total, cd_size, cd_offset = struct.unpack("<4sQ2H2L4Q", rec)
        cd_end = rec_pos
    if disk != 0 or cd_disk != 0:
        raise zipfile.BadZipFile("multi-disk zip archives are not supported")
    concat = cd_end - cd_size - cd_offset
    if concat < 0:
        raise zipfile.BadZipFile("central directory offset points outside the file")
    if cd_size > _MAX_DIRECTORY:
        raise zipfile.BadZipFile(f"central directory of {cd_size} bytes is too large")
    cd = _read_at(f, cd_offset + concat, cd_size)
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
        if sig != _CEN:
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
            )
        )
        p += 46 + nlen + elen + clen
    first = min((e.local_offset for e in entries), default=cd_offset + concat)
    return ZipIndex(tuple(entries), n_total, first, concat, trailing, truncated)


@dataclass(slots=True)
class _Located:
    entry: ZipEntry
    data_offset: int
    head: bytes


def _locate(f: BinaryIO, size: int, e: ZipEntry) -> tuple[_Located | None, str | None]:
    """Read a member's local header and the first bytes of its data. Returns the located member
    (None when its data cannot be found) and what is wrong with the header, if anything."""
    buf = _read_at(f, e.local_offset, 30 + len(e.raw_name) + 64 + HEAD_SIZE)
    if len(buf) < 30 or buf[:4] != _LOC:
        return None, "has no valid local header at its recorded offset"
    _sig, _v, _fl, _m, _t, _d, _crc, _cs, _us, nlen, elen = _LOC_FMT.unpack_from(buf)
    local_name = buf[30 : 30 + nlen]
    data_offset = e.local_offset + 30 + nlen + elen
    if data_offset + e.csize > size:
        return None, "extends past the end of the file"
    start = 30 + nlen + elen
    head = buf[start : start + HEAD_SIZE]
    if len(head) < min(HEAD_SIZE, e.csize):
        head = _read_at(f, data_offset, min(HEAD_SIZE, e.csize))
    problem = None
    if local_name != e.raw_name:
        # PyTorch (miniz) goes by the central directory and reads the data all the same.
        problem = f"is named {local_name.decode('utf-8', 'replace')!r} in its local header"
    return _Located(e, data_offset, head[: e.csize]), problem


def _range_reader(f: BinaryIO, offset: int, length: int) -> Callable[[int], bytes]:
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


def _factory(
    f: BinaryIO, loc: _Located
) -> tuple[Callable[[int], bytes], Callable[[], _inflate.Decompressor]]:
    e = loc.entry
    method = _METHODS[e.method]
    if method == "zip-lzma":
        props = _read_at(f, loc.data_offset, 9)
        read = _range_reader(f, loc.data_offset + 4 + int.from_bytes(props[2:4], "little"), e.csize)
        return read, lambda: _inflate.new_decompressor("zip-lzma", props)
    return _range_reader(f, loc.data_offset, e.csize), lambda: _inflate.new_decompressor(method)


def read_member(blob: Blob, index: ZipIndex, entry: ZipEntry, cap: int) -> bytes:
    """The decompressed bytes of one member, at most ``cap`` (for small metadata members)."""
    with blob.open() as f:
        loc, problem = _locate(f, blob.size, entry)
        if loc is None:
            raise zipfile.BadZipFile(f"{entry.name} {problem}")
        if entry.method == 0:
            return _read_at(f, loc.data_offset, min(cap, entry.csize))
        if entry.method not in _METHODS:
            raise zipfile.BadZipFile(f"{entry.name}: cannot decompress (method {entry.method})")
        read, factory = _factory(f, loc)
        return _inflate.inflate(read, factory, cap=cap).data


def analyze_zip(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """Check a zip's structure and hand every member whose content matters to its analyzer."""
    with blob.open() as f:
        index = read_index(f, blob.size, ctx.limits.max_members)
        yield from _structure(blob, index, ctx)
        located: list[tuple[int, int]] = []
        seen: dict[bytes, int] = {}
        cap = FindingCap(ctx)
        for e in index.entries[: ctx.limits.max_members]:
            if not ctx.see_member():
                yield from member_limit(ctx)
                break
            yield from cap(_entry_checks(e, seen, ctx))
            loc, problem = _locate(f, blob.size, e)
            if problem:
                yield from cap(
                    [
                        ctx.finding(
                            "ZIP-LOCAL-HEADER",
                            Severity.HIGH,
                            f"member {e.name!r} {problem}",
                            why="Readers disagree on such members (Python's zipfile refuses "
                            "them, PyTorch's reader uses the directory): a scanner can be made "
                            "to skip one.",
                            offset=e.local_offset,
                        )
                    ]
                )
            if loc is None:
                continue
            located.append((e.local_offset, loc.data_offset + e.csize))
            if e.method not in _METHODS:
                continue
            if e.is_symlink:
                yield from cap(_symlink(blob, index, e, ctx))
                continue
            # Encryption flags are looked at anyway: PyTorch ignores them (CVE-2025-1945), so a
            # "flagged" member may be plain data. Really encrypted bytes sniff as nothing.
            try:
                yield from _member(f, blob, loc, ctx)
            except _MEMBER_ERRORS as exc:
                # One unreadable member must not end the walk (modelscan#354): report, go on.
                yield _corrupt(e, exc, ctx)
        yield from _overlaps(located, ctx)
        yield from cap.summary()


def _structure(blob: Blob, index: ZipIndex, ctx: ScanContext) -> Iterator[Finding]:
    n = len(index.entries)
    if index.truncated:
        yield ctx.finding(
            "ZIP-TOO-MANY-MEMBERS",
            Severity.HIGH,
            f"more than {n} members; only the first {n} were inspected",
            why="Huge member counts exhaust scanners; what was not inspected may hide a payload.",
        )
    if not index.truncated and index.declared_count not in (n, n & 0xFFFF):
        yield ctx.finding(
            "ZIP-ENTRY-COUNT-MISMATCH",
            Severity.HIGH,
            f"the end record declares {index.declared_count} members, the directory holds {n}",
            why="Readers that trust the count (PyTorch's miniz) and readers that walk the "
            "directory (Python's zipfile) see different members.",
        )
    if index.prefix > 0:
        yield ctx.finding(
            "ZIP-PREPENDED-DATA",
            Severity.HIGH,
            f"{index.prefix} bytes of data before the first local header",
            why="torch.load only treats a file as a zip when it starts with a local header: "
            "otherwise it unpickles the file from byte 0, so the prefix is what really runs.",
            offset=0,
        )
        prefix = blob.window("<prefix>", 0, min(index.prefix, ctx.limits.max_member_size))
        fmt = sniff_member(prefix.head(PREFIX_SIZE), "")
        if worth_dispatching(fmt):
            yield from ctx.scan_nested(prefix, "<prefix>")
    if index.trailing > 0:
        yield ctx.finding(
            "ZIP-TRAILING-DATA",
            Severity.LOW,
            f"{index.trailing} bytes after the end-of-central-directory record",
            why="Data appended after a zip is ignored by zip readers but may be read by others.",
        )


def _entry_checks(e: ZipEntry, seen: dict[bytes, int], ctx: ScanContext) -> Iterator[Finding]:
    if e.raw_name in seen and seen[e.raw_name] >= 0:
        yield ctx.finding(
            "ZIP-DUPLICATE-NAME",
            Severity.HIGH,
            f"member {e.name!r} appears more than once (entries {seen[e.raw_name]} and {e.index})",
            why="PyTorch reads the first of two same-named members, Python's zipfile the last: "
            "a scanner can be shown a benign copy while the loader runs the other. Both scanned.",
        )
        seen[e.raw_name] = -1  # reported once per name
    elif e.raw_name not in seen:
        seen[e.raw_name] = e.index
    reason = unsafe_path(e.name)
    if reason:
        yield ctx.finding(
            "ARCHIVE-PATH-TRAVERSAL",
            Severity.HIGH,
            f"member {e.name!r} {reason}",
            why="Extracting it writes outside the target directory (zip slip).",
        )
    elif "\\" in e.name:
        yield ctx.finding(
            "ARCHIVE-ODD-NAME",
            Severity.MEDIUM,
            f"member {e.name!r} contains backslashes",
            why="Windows extractors treat a backslash as a separator; names then differ between "
            "tools.",
        )
    if e.flags & 0x41 or e.method == 99:
        yield ctx.finding(
            "ZIP-ENCRYPTED",
            Severity.HIGH,
            f"member {e.name!r} is flagged as encrypted",
            why="Encrypted content cannot be scanned, and Python's zipfile refuses such members "
            "while PyTorch ignores the flag (CVE-2025-1945); the bytes were checked as plain.",
        )
    if e.flags & 0x20:
        yield ctx.finding(
            "ZIP-ODD-FLAGS",
            Severity.HIGH,
            f"member {e.name!r} sets the 'patched data' flag (0x20)",
            why="Python's zipfile refuses such members (NotImplementedError) while PyTorch loads "
            "them: a scanner built on zipfile crashes (CVE-2025-1945).",
        )
    if e.method not in _METHODS and e.method != 99:
        yield ctx.finding(
            "ZIP-UNSUPPORTED-COMPRESSION",
            Severity.HIGH,
            f"member {e.name!r} uses compression method {e.method}, which cannot be inspected",
            why="Content the scanner cannot decompress is content it did not check.",
        )


def _symlink(blob: Blob, index: ZipIndex, e: ZipEntry, ctx: ScanContext) -> Iterator[Finding]:
    try:
        target = read_member(blob, index, e, 4096).decode("utf-8", "replace")
    except _MEMBER_ERRORS as exc:
        yield _corrupt(e, exc, ctx)
        return
    base = e.name.rsplit("/", 1)[0] if "/" in e.name else ""
    reason = unsafe_path(target)
    depth = 0
    for part in f"{base}/{target}".split("/"):
        depth += -1 if part == ".." else (0 if part in ("", ".") else 1)
        if depth < 0:
            reason = reason or "climbs out of the archive root"
    yield ctx.finding(
        "ARCHIVE-LINK-ESCAPE" if reason else "ARCHIVE-SYMLINK",
        Severity.HIGH if reason else Severity.LOW,
        f"member {e.name!r} is a symlink to {target!r}" + (f", which {reason}" if reason else ""),
        why="Unzip tools that restore symlinks let later members or readers follow them "
        "outside the extraction directory.",
    )


def _overlaps(located: list[tuple[int, int]], ctx: ScanContext) -> Iterator[Finding]:
    located.sort()
    for (_s1, end1), (s2, _end2) in itertools.pairwise(located):
        if s2 < end1:
            yield ctx.finding(
                "ZIP-OVERLAPPING-MEMBERS",
                Severity.HIGH,
                "members overlap in the file (several directory entries share bytes)",
                why="Overlapping members are the signature of non-recursive zip bombs and of "
                "files built to look different to different readers.",
                offset=s2,
            )
            return


def _is_tensor_storage(name: str, ctx: ScanContext) -> bool:
    return ctx.format is Format.PYTORCH_ZIP and _TENSOR_STORAGE.match(name) is not None


def _inflate_head(f: BinaryIO, loc: _Located, n: int) -> bytes:
    read, factory = _factory(f, loc)
    return _inflate.inflate(read, factory, cap=n).data


def _storage_worth_a_look(head: bytes) -> bool:
    if head[:1] == b"\x80" or head[:2] == b"PK":
        return True
    # A protocol 0/1 pickle planted in storage: cheap test on the head only (random floats start
    # with one of these bytes about once in twelve, and then fail to parse within a few ops).
    return needs_prefix(head) and plausible_pickle(head)


def _member(f: BinaryIO, blob: Blob, loc: _Located, ctx: ScanContext) -> Iterator[Finding]:
    e = loc.entry
    tensor = _is_tensor_storage(e.name, ctx)
    if tensor and e.method == 0 and not _storage_worth_a_look(loc.head):
        return  # raw tensor bytes: only a pickle or a zip there would be worth a look
    if e.method == 0:
        prefix = loc.head
        if needs_prefix(prefix) or (tensor and prefix[:1] == b"\x80"):
            prefix = _read_at(f, loc.data_offset, min(PREFIX_SIZE, e.csize))
    else:
        if ctx.extract_budget() <= 0:
            yield from budget_exhausted(ctx)
            return
        try:
            prefix = _inflate_head(f, loc, HEAD_SIZE)
            if needs_prefix(prefix) and len(prefix) == HEAD_SIZE:
                prefix = _inflate_head(f, loc, PREFIX_SIZE)
        except _MEMBER_ERRORS as exc:
            yield _corrupt(e, exc, ctx)
            return
        ctx.charge_extracted(len(prefix))
    fmt = sniff_member(prefix, e.name)
    if tensor:
        # Raw storage is never unpickled by PyTorch: only a real pickle or zip there is odd.
        if fmt is Format.PICKLE and not plausible_pickle(prefix):
            return
        if fmt not in (Format.PICKLE, Format.ZIP):
            return
    if not worth_dispatching(fmt, e.name):
        return
    if e.method == 0:
        if e.csize <= _CRC_CHECK_MAX and _crc_of(f, loc.data_offset, e.csize) != e.crc:
            yield _bad_crc(e, ctx)
        yield from ctx.scan_nested(blob.window(e.name, loc.data_offset, e.csize), e.name)
        return
    budget = ctx.extract_budget()
    if budget <= 0:
        yield from budget_exhausted(ctx)
        return
    cap = min(ctx.limits.max_member_size, budget)
    read, factory = _factory(f, loc)
    try:
        out = _inflate.inflate(read, factory, cap=cap, max_ratio=ctx.limits.max_ratio)
    except _MEMBER_ERRORS as exc:
        yield _corrupt(e, exc, ctx)
        return
    ctx.charge_extracted(len(out.data))
    if out.limit is not None:
        what = (
            f"more than {cap} bytes"
            if out.limit == "size"
            else f"more than {ctx.limits.max_ratio}x its compressed size"
        )
        yield ctx.finding(
            limit_rule("ZIP-BOMB", out.limit, len(out.data), out.consumed, cap, ctx),
            Severity.HIGH,
            f"member {e.name!r} decompresses to {what}; only the first "
            f"{len(out.data)} bytes were inspected",
            why="Decompression bombs exhaust memory and disk; the part not inspected may hide "
            "a payload.",
        )
    elif not out.complete:
        yield _corrupt(e, EOFError("compressed data ends early"), ctx)
    elif zlib.crc32(out.data) != e.crc:
        yield _bad_crc(e, ctx)
    yield from ctx.scan_nested(Blob(e.name, data=out.data), e.name)


def _crc_of(f: BinaryIO, offset: int, size: int) -> int:
    crc = 0
    read = _range_reader(f, offset, size)
    while chunk := read(1 << 20):
        crc = zlib.crc32(chunk, crc)
    return crc


def _bad_crc(e: ZipEntry, ctx: ScanContext) -> Finding:
    return ctx.finding(
        "ZIP-BAD-CRC",
        Severity.HIGH,
        f"member {e.name!r} does not match its recorded CRC-32",
        why="Python's zipfile refuses such members (scanners built on it crash or skip them) "
        "while PyTorch loads them without checking.",
    )


def _corrupt(e: ZipEntry, exc: BaseException, ctx: ScanContext) -> Finding:
    return ctx.finding(
        "ZIP-CORRUPT-MEMBER",
        Severity.HIGH,
        f"member {e.name!r} cannot be decompressed ({type(exc).__name__}: {exc})",
        why="Loaders often read a corrupt stream up to the error — far enough to run a payload.",
    )
