"""tar archives, including legacy PyTorch checkpoints (members ``sys_info``, ``pickle``,
``storages``, ``tensors`` — each starts with a pickle).

Member headers are read with :mod:`tarfile` (it seeks over member data); member contents are
judged by a small head and handed on as windows of the archive, never extracted to disk.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from typing import BinaryIO

from mlsec.formats import PREFIX_SIZE, Format, is_pickle_prefix
from mlsec.scan.base import Blob, ScanContext
from mlsec.scan.formats._members import (
    HEAD_SIZE,
    FindingCap,
    member_limit,
    needs_prefix,
    sniff_member,
    unsafe_path,
    worth_dispatching,
)
from mlsec.scan.model import Finding, Severity

__all__ = ["analyze_tar"]


def analyze_tar(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """Check member names and links, and hand every member whose content matters on."""
    seen: set[str] = set()
    count = 0
    cap = FindingCap(ctx)
    yield from _polyglot(blob, ctx)
    with blob.open() as f:
        try:
            tf = tarfile.open(fileobj=f, mode="r:")  # noqa: SIM115 - closed just below
        except tarfile.TarError as exc:
            raise ValueError(f"not a readable tar archive: {exc}") from exc
        with tf:
            while True:
                try:
                    m = tf.next()
                except tarfile.TarError as exc:
                    yield ctx.finding(
                        "TAR-CORRUPT",
                        Severity.HIGH,
                        f"tar archive is corrupt after {count} members ({exc})",
                        why="Members after the damage were not inspected; other tar readers "
                        "may still read them.",
                    )
                    yield from cap.summary()
                    return
                if m is None:
                    yield from _after_end(f, tf.offset, blob.size, ctx)
                    yield from cap.summary()
                    return
                count += 1
                if not ctx.see_member():
                    yield from member_limit(ctx)
                    yield from cap.summary()
                    return
                yield from cap(_checks(m, seen, ctx))
                if m.isreg() and not m.issparse() and m.size > 0:
                    yield from _content(blob, m, ctx)


def _polyglot(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    # A tar header starts with a 100-byte name that can hold a whole pickle: pickle.load (and
    # joblib) would run it and stop at its STOP, while tar readers see an ordinary archive.
    head = blob.head(PREFIX_SIZE)
    if not is_pickle_prefix(head) or ctx.dispatch is None:
        return
    yield ctx.finding(
        "POLYGLOT-PICKLE",
        Severity.HIGH,
        f"{ctx.member or ctx.file}: the archive's first bytes are also a pickle",
        why="The same file is an archive to tar readers and code to pickle.load.",
    )
    yield from ctx.dispatch(blob, ctx.child("<as pickle>", Format.PICKLE))


def _after_end(f: BinaryIO, offset: int, size: int, ctx: ScanContext) -> Iterator[Finding]:
    # tarfile stops at the first bad header after the first; GNU tar skips it and reads on.
    f.seek(offset)
    pos = offset
    while pos < size:
        chunk = f.read(1 << 20)
        if not chunk:
            return
        if chunk.strip(b"\x00"):
            yield ctx.finding(
                "TAR-HIDDEN-DATA",
                Severity.HIGH,
                f"data after the point where tar reading stopped (offset {offset})",
                why="A corrupt header ends Python's tarfile (and this scan) but GNU tar skips it "
                "and extracts what follows, uninspected.",
                offset=offset,
            )
            return
        pos += len(chunk)


def _checks(m: tarfile.TarInfo, seen: set[str], ctx: ScanContext) -> Iterator[Finding]:
    if m.name in seen:
        yield ctx.finding(
            "ARCHIVE-DUPLICATE-NAME",
            Severity.MEDIUM,
            f"member {m.name!r} appears more than once",
            why="tarfile returns the last copy, other tools the first; both were scanned.",
        )
    seen.add(m.name)
    reason = unsafe_path(m.name)
    if reason:
        yield ctx.finding(
            "ARCHIVE-PATH-TRAVERSAL",
            Severity.HIGH,
            f"member {m.name!r} {reason}",
            why="Extracting it writes outside the target directory (tar slip).",
        )
    if m.issym() or m.islnk():
        target = m.linkname
        # A symlink's target is relative to the link's directory; a hard link's to the root.
        base = m.name.rsplit("/", 1)[0] if m.issym() and "/" in m.name else ""
        link_reason = unsafe_path(target) or unsafe_path(f"{base}/{target}".lstrip("/"))
        depth = 0
        for part in f"{base}/{target}".split("/"):
            depth += -1 if part == ".." else (0 if part in ("", ".") else 1)
            if depth < 0:
                link_reason = link_reason or "climbs out of the archive root"
        if link_reason:
            yield ctx.finding(
                "ARCHIVE-LINK-ESCAPE",
                Severity.HIGH,
                f"link {m.name!r} -> {target!r} {link_reason}",
                why="Extraction through such a link reads or overwrites files outside the "
                "target directory.",
            )
    elif m.ischr() or m.isblk() or m.isfifo():
        yield ctx.finding(
            "ARCHIVE-SPECIAL-FILE",
            Severity.MEDIUM,
            f"member {m.name!r} is a device or FIFO",
            why="Model archives have no reason to create device nodes or pipes when extracted.",
        )
    elif m.issparse():
        yield ctx.finding(
            "TAR-SPARSE-MEMBER",
            Severity.MEDIUM,
            f"member {m.name!r} is a sparse file and was not inspected",
            why="Content the scanner does not read is content it did not check.",
        )


def _content(blob: Blob, m: tarfile.TarInfo, ctx: ScanContext) -> Iterator[Finding]:
    sub = blob.window(m.name, m.offset_data, m.size)
    if sub.size < m.size:
        yield ctx.finding(
            "TAR-TRUNCATED",
            Severity.HIGH,
            f"member {m.name!r} extends past the end of the archive",
            why="A truncated member may be read differently by different tools.",
        )
    head = sub.head(HEAD_SIZE)
    if needs_prefix(head):
        head = sub.head(PREFIX_SIZE)
    if worth_dispatching(sniff_member(head, m.name), m.name, head, whole=m.size <= len(head)):
        yield from ctx.scan_nested(sub, m.name)
