"""Zip containers: generic zips, PyTorch checkpoints, NumPy ``.npz`` and the zip layer of Keras v3.

The central directory is parsed by our own reader (:mod:`._zipfmt`, not :mod:`zipfile`): it is
faster on checkpoints with tens of thousands of members, and it sees what ``zipfile`` hides or
refuses — duplicate names (PyTorch reads the first, ``zipfile`` the last), local headers that
disagree with the directory, bad CRCs (``zipfile`` refuses, PyTorch loads), data before the first
local header (a file PyTorch loads as a legacy pickle while a zip-aware scanner looks only at the
members).

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
from collections.abc import Iterator
from typing import BinaryIO

from mlsec.formats import PREFIX_SIZE, Format, is_pickle_prefix
from mlsec.scan.base import Blob, ScanContext
from mlsec.scan.formats import _inflate
from mlsec.scan.formats._members import (
    HEAD_SIZE,
    FindingCap,
    budget_exhausted,
    limit_finding,
    member_limit,
    needs_prefix,
    sniff_member,
    unsafe_path,
    worth_dispatching,
)
from mlsec.scan.formats._zipfmt import (
    METHODS,
    Located,
    ZipEntry,
    ZipIndex,
    locate,
    member_stream,
    range_reader,
    read_at,
    read_index,
    read_member,
)
from mlsec.scan.model import Finding, Severity
from mlsec.scan.pickle.driver import looks_like_pickle

__all__ = ["ZipEntry", "ZipIndex", "analyze_zip", "read_index", "read_member"]

_CRC_CHECK_MAX = 64 * 1024 * 1024

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


def analyze_zip(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """Check a zip's structure and hand every member whose content matters to its analyzer."""
    with blob.open() as f:
        index = read_index(f, blob.size, ctx.limits.max_members)
        yield from _structure(blob, index, ctx)
        located: list[tuple[int, int]] = []
        seen: dict[bytes, int] = {}
        dense = [0, 0]  # bytes declared by highly compressed members; reported yet
        cap = FindingCap(ctx)
        for e in index.entries[: ctx.limits.max_members]:
            if not ctx.see_member():
                yield from member_limit(ctx)
                break
            yield from cap(_entry_checks(e, seen, ctx))
            loc, problem = locate(f, blob.size, e)
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
            if e.method not in METHODS:
                continue
            if e.is_symlink:
                yield from cap(_symlink(blob, index, e, ctx))
                continue
            bomb = _declared_bomb(e, ctx, dense)
            if bomb is not None:
                yield bomb
            # Encryption flags are looked at anyway: PyTorch ignores them (CVE-2025-1945), so a
            # "flagged" member may be plain data. Really encrypted bytes sniff as nothing.
            try:
                yield from _member(f, blob, loc, ctx, bomb_reported=bomb is not None)
            except _MEMBER_ERRORS as exc:
                # One unreadable member must not end the walk (modelscan#354): report, go on.
                yield _corrupt(e, exc, ctx)
        yield from _overlaps(located, ctx)
        if ctx.format is Format.PYTORCH_ZIP:  # TorchScript code/ members (torchscript.py)
            from mlsec.scan.formats.torchscript import analyze_code

            yield from cap(analyze_code(blob, index, ctx))
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
    if index.zip64_elsewhere:
        yield ctx.finding(
            "ZIP64-LOCATOR-MISMATCH",
            Severity.HIGH,
            "the zip64 locator points at a different end record than the one before it",
            why="Python's zipfile and PyTorch's miniz then read different central directories: "
            "one of them is what the loader uses and was not scanned.",
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
        head = prefix.head(PREFIX_SIZE)
        if worth_dispatching(fmt, prefix=head, whole=prefix.size <= len(head)):
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
            f"member {e.name!r} appears more than once (entries {seen[e.raw_name]} and {e.number})",
            why="PyTorch reads the first of two same-named members, Python's zipfile the last: "
            "a scanner can be shown a benign copy while the loader runs the other. Both scanned.",
        )
        seen[e.raw_name] = -1  # reported once per name
    elif e.raw_name not in seen:
        seen[e.raw_name] = e.number
    if e.unicode_name is not None and e.unicode_name != e.name:
        yield ctx.finding(
            "ZIP-NAME-CONFUSION",
            Severity.MEDIUM if unsafe_path(e.unicode_name) is None else Severity.HIGH,
            f"member {e.name!r} carries another name in its Unicode Path field: {e.unicode_name!r}",
            why="Info-ZIP unzip and others use the Unicode Path name, Python and PyTorch the "
            "header name: tools disagree on what the member is and where it goes.",
        )
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
    if e.method not in METHODS and e.method != 99:
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


def _inflate_head(f: BinaryIO, loc: Located, n: int) -> bytes:
    read, factory = member_stream(f, loc)
    return _inflate.inflate(read, factory, cap=n).data


def _storage_worth_a_look(head: bytes) -> bool:
    if head[:1] == b"\x80" or head[:2] == b"PK":
        return True
    # A protocol 0/1 pickle planted in storage: cheap test on the head only (random floats start
    # with one of these bytes about once in twelve, and then fail to parse within a few ops).
    return needs_prefix(head) and is_pickle_prefix(head)


def _declared_bomb(e: ZipEntry, ctx: ScanContext, dense: list[int]) -> Finding | None:
    """A compressed member whose central directory promises more than ``max_ratio`` times its
    compressed size, and more than :data:`~._inflate.BOMB_MIN_OUTPUT` bytes — alone, or with the
    archive's other such members (``dense`` sums them: many medium bombs, overlapping or not).
    Loaders allocate or extract what the directory declares (miniz inflates into a buffer of
    that size, zipfile reads up to it), so the declaration is the bomb even when the scanner,
    judging the member by its head, would never inflate it."""
    if e.method == 0 or e.usize <= _inflate.RATIO_MIN_OUTPUT:
        return None
    ratio = e.usize / max(e.csize, 1)
    if ratio <= ctx.limits.max_ratio:
        return None
    dense[0] += e.usize
    if e.usize > _inflate.BOMB_MIN_OUTPUT:
        what = f"member {e.name!r} declares {e.usize} bytes"
    elif dense[0] > _inflate.BOMB_MIN_OUTPUT and dense[1] == 0:
        dense[1] = 1  # reported once per archive
        what = f"members up to {e.name!r} declare {dense[0]} bytes together; this one"
    else:
        return None
    return ctx.finding(
        "ZIP-BOMB",
        Severity.HIGH,
        f"{what} from {e.csize} compressed ({ratio:.0f}x, limit {ctx.limits.max_ratio}x)",
        why="Decompression bombs exhaust the memory and disk of whatever extracts or loads the "
        "archive; a member this compressible is not model data.",
        offset=e.local_offset,
    )


def _member(
    f: BinaryIO, blob: Blob, loc: Located, ctx: ScanContext, *, bomb_reported: bool = False
) -> Iterator[Finding]:
    e = loc.entry
    tensor = _is_tensor_storage(e.name, ctx)
    if tensor and e.method == 0 and not _storage_worth_a_look(loc.head):
        return  # raw tensor bytes: only a pickle or a zip there would be worth a look
    if e.method == 0:
        prefix = loc.head
        if needs_prefix(prefix) or prefix[:1] == b"\x80":
            prefix = read_at(f, loc.data_offset, min(PREFIX_SIZE, e.csize))
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
        if fmt is Format.PICKLE and not looks_like_pickle(prefix):
            return
        if fmt not in (Format.PICKLE, Format.ZIP):
            return
    if not worth_dispatching(fmt, e.name, prefix, whole=e.usize <= len(prefix)):
        return
    if fmt is Format.HDF5 and ctx.format is Format.KERAS_ZIP and e.name.endswith(".weights.h5"):
        return  # Keras reads only datasets from its weights file: no config to look for there
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
    # A member that declares a modest size is inflated up to that size whatever its ratio (a
    # zero-filled array in an npz is normal); one byte more means the declaration lied, and then
    # the ratio judges it as usual.
    honest = e.usize < min(cap, _inflate.BOMB_MIN_OUTPUT)
    read, factory = member_stream(f, loc)
    try:
        out = _inflate.inflate(
            read,
            factory,
            cap=e.usize + 1 if honest else cap,
            max_ratio=0 if honest else ctx.limits.max_ratio,
        )
        if honest and len(out.data) > e.usize:
            read, factory = member_stream(f, loc)
            out = _inflate.inflate(read, factory, cap=cap, max_ratio=ctx.limits.max_ratio)
    except _MEMBER_ERRORS as exc:
        yield _corrupt(e, exc, ctx)
        return
    ctx.charge_extracted(len(out.data))
    if out.limit is not None:
        if not (bomb_reported and out.limit == "ratio"):
            yield limit_finding("ZIP-BOMB", f"member {e.name!r}", out, cap, ctx)
    elif not out.complete:
        yield _corrupt(e, EOFError("compressed data ends early"), ctx)
    elif zlib.crc32(out.data) != e.crc:
        yield _bad_crc(e, ctx)
    yield from ctx.scan_nested(Blob(e.name, data=out.data), e.name)


def _crc_of(f: BinaryIO, offset: int, size: int) -> int:
    crc = 0
    read = range_reader(f, offset, size)
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
