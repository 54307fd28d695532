"""Compressed streams: gzip, zlib (joblib's default), bzip2, xz/lzma; zstd and lz4 fail closed.

The stream is decompressed within the member-size, ratio and total-extraction limits, then handed
back to the dispatcher, which sniffs what came out (usually a pickle). Concatenated streams are
followed, as Python's gzip/bz2/lzma readers do. A compressed tar is walked while it decompresses
instead (model archives are often multi-gigabyte ``.tar.gz`` files).
"""

from __future__ import annotations

import io
import lzma
import tarfile
import zlib
from collections.abc import Callable, Iterator
from typing import IO

from mlsec.formats import PREFIX_SIZE, Format
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
    worth_dispatching,
)
from mlsec.scan.model import Finding, Severity

__all__ = ["analyze_compressed", "analyze_uninspectable"]

_KINDS = {
    Format.GZIP: ("gzip", b"\x1f\x8b"),
    Format.ZLIB: ("zlib", b""),
    Format.BZIP2: ("bzip2", b"BZh"),
    Format.XZ: ("xz", b"\xfd7zXZ\x00"),
}


def _reader(blob: Blob) -> tuple[Callable[[int], bytes], Callable[[], None]]:
    f = blob.open()
    return f.read, f.close


def analyze_compressed(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """Decompress a gzip / zlib / bzip2 / xz stream (bounded) and scan what it holds."""
    kind, magic = _KINDS[ctx.format]
    budget = ctx.extract_budget()
    if budget <= 0:
        yield from budget_exhausted(ctx)
        return
    if ctx.depth + 2 <= ctx.limits.max_depth and _holds_tar(blob, kind, magic):
        yield from _stream_tar(blob, ctx, kind, magic)
        return
    cap = min(ctx.limits.max_member_size, budget)
    read, close = _reader(blob)
    try:
        out = _inflate.inflate(
            read,
            lambda: _inflate.new_decompressor(kind),
            cap=cap,
            max_ratio=ctx.limits.max_ratio,
            magic=magic,
        )
    except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError) as exc:
        yield ctx.finding(
            "PARSE-ERROR",
            Severity.HIGH,
            f"{ctx.member or ctx.file}: corrupt {kind} stream ({type(exc).__name__}: {exc})",
            why="Loaders often decompress up to the error — far enough to run a payload.",
        )
        return
    finally:
        close()
    ctx.charge_extracted(len(out.data))
    if out.limit is not None:
        yield limit_finding("DECOMPRESSION-BOMB", f"{kind} stream", out, cap, ctx)
    elif not out.complete:
        yield ctx.finding(
            "COMPRESSED-TRUNCATED",
            Severity.MEDIUM,
            f"{kind} stream ends before its end marker",
            why="A truncated stream is still read up to its end by lenient loaders.",
        )
    elif out.trailing.strip(b"\x00"):
        yield ctx.finding(
            "COMPRESSED-TRAILING-DATA",
            Severity.LOW,
            f"data after the end of the {kind} stream",
            why="Bytes after a compressed stream are ignored by some readers and not by others.",
        )
    if out.data:
        yield from ctx.scan_nested(Blob(f"{blob.name}:{kind}", data=out.data), f"<{kind}>")


def _holds_tar(blob: Blob, kind: str, magic: bytes) -> bool:
    read, close = _reader(blob)
    try:
        head = _inflate.inflate(read, lambda: _inflate.new_decompressor(kind), cap=512).data
    except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError):
        return False  # the full decompression reports it
    finally:
        close()
    return sniff_member(head, "") is Format.TAR


def _stream_tar(blob: Blob, ctx: ScanContext, kind: str, magic: bytes) -> Iterator[Finding]:
    """A compressed tar (``.tar.gz``, ``.tar.xz``…): walked as it decompresses, so a large
    archive costs its decompression time, not its size in memory. Members are handled like
    those of a plain tar; the ones that matter are read (bounded) and handed on."""
    from mlsec.scan.formats.tar import _checks

    tctx = ctx.child(f"<{kind}>", Format.TAR)
    ctx.counters.members_scanned += 1
    f = blob.open()
    stream = _inflate.Stream(
        f.read,
        lambda: _inflate.new_decompressor(kind),
        cap=ctx.extract_budget(),
        magic=magic,
        max_ratio=ctx.limits.max_ratio,
    )
    charged = 0
    seen: set[str] = set()
    capped = FindingCap(tctx)
    try:
        reader = io.BufferedReader(stream, 1 << 20)
        with tarfile.open(fileobj=reader, mode="r|") as tf:
            for m in tf:
                if not tctx.see_member():
                    yield from member_limit(tctx)
                    break
                yield from capped(_checks(m, seen, tctx))
                if not m.isreg() or m.size <= 0 or m.issparse():
                    continue
                fh = tf.extractfile(m)
                if fh is None:
                    continue
                head = fh.read(HEAD_SIZE)
                if needs_prefix(head):
                    head += fh.read(PREFIX_SIZE - len(head))
                whole = m.size <= len(head)
                if not worth_dispatching(sniff_member(head, m.name), m.name, head, whole=whole):
                    continue
                cap = ctx.limits.max_member_size
                data, bomb = _read_member(fh, head, min(m.size, cap), stream, ctx)
                if bomb:
                    yield tctx.finding(
                        "DECOMPRESSION-BOMB",
                        Severity.HIGH,
                        f"member {m.name!r}: the {kind} stream grew past "
                        f"{ctx.limits.max_ratio}x its compressed size; only the first "
                        f"{len(data)} bytes were inspected",
                        why="Decompression bombs exhaust memory; the part not inspected may "
                        "hide a payload.",
                    )
                elif m.size > cap:
                    yield tctx.finding(
                        "DECOMPRESSION-LIMIT",
                        Severity.HIGH,
                        f"member {m.name!r} is {m.size} bytes; only the first {cap} were inspected",
                        why="What was not inspected may hide a payload.",
                    )
                ctx.charge_extracted(stream.produced - charged)
                charged = stream.produced
                yield from tctx.scan_nested(Blob(m.name, data=data), m.name)
            while chunk := reader.read(1 << 20):
                if chunk.strip(b"\x00"):
                    yield tctx.finding(
                        "TAR-HIDDEN-DATA",
                        Severity.HIGH,
                        "data after the point where tar reading stopped",
                        why="A corrupt header ends Python's tarfile (and this scan) but GNU tar "
                        "skips it and extracts what follows, uninspected.",
                    )
                    break
    except tarfile.TarError as exc:
        if not stream.bomb:  # a bomb's stream is cut on purpose: reported below
            yield tctx.finding(
                "TAR-CORRUPT",
                Severity.HIGH,
                f"compressed tar archive is corrupt ({exc})",
                why="Members after the damage were not inspected; other tar readers may read them.",
            )
    except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError) as exc:
        yield ctx.finding(
            "PARSE-ERROR",
            Severity.HIGH,
            f"{ctx.member or ctx.file}: corrupt {kind} stream ({type(exc).__name__}: {exc})",
            why="Loaders often decompress up to the error — far enough to run a payload.",
        )
    finally:
        f.close()
        ctx.charge_extracted(stream.produced - charged)
    yield from capped.summary()
    if stream.bomb:
        yield tctx.finding(
            "DECOMPRESSION-BOMB",
            Severity.HIGH,
            f"the {kind} stream grew past {ctx.limits.max_ratio}x its compressed size after "
            f"{stream.produced} bytes; the rest of the archive was not inspected",
            why="Decompression bombs exhaust memory and disk; the part not inspected may hide a "
            "payload.",
        )
    elif stream.limited:
        yield from budget_exhausted(ctx)


def _read_member(
    fh: IO[bytes], head: bytes, size: int, stream: _inflate.Stream, ctx: ScanContext
) -> tuple[bytes, bool]:
    """Up to ``size`` bytes of a member, read in steps; stops (True) once the output outgrows
    the compressed input by more than ``max_ratio`` — a bomb, not a member."""
    chunks = [head]
    got = len(head)
    while got < size:
        chunk = fh.read(min(1 << 20, size - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
        if got > _inflate.RATIO_MIN_OUTPUT and stream.produced > ctx.limits.max_ratio * max(
            stream.consumed, 1
        ):
            return b"".join(chunks), True
    return b"".join(chunks), False


def analyze_uninspectable(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """zstd and lz4: no decompressor in the standard library, so the content is not inspected."""
    yield ctx.finding(
        "CANNOT-INSPECT",
        Severity.HIGH,
        f"{ctx.member or ctx.file}: {ctx.format.value} content cannot be inspected "
        "(no decompressor available)",
        why="joblib and others load zstd/lz4-compressed pickles; unseen content may hide a "
        "payload.",
    )


def analyze_encrypted(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """age-encrypted content: unreadable without the key, so it cannot be vouched for."""
    yield ctx.finding(
        "CANNOT-INSPECT",
        Severity.HIGH,
        f"{ctx.member or ctx.file}: age-encrypted content cannot be inspected",
        why="Whoever decrypts it loads what is inside; decrypt it (mlsec decrypt, or pull "
        "--identity) and scan the plaintext.",
    )
