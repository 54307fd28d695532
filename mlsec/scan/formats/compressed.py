"""Compressed streams: gzip, zlib (joblib's default), bzip2, xz/lzma; zstd and lz4 fail closed.

The stream is decompressed within the member-size, ratio and total-extraction limits, then handed
back to the dispatcher, which sniffs what came out (usually a pickle). Concatenated streams are
followed, as Python's gzip/bz2/lzma readers do.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator

from mlsec.formats import Format
from mlsec.scan.base import Blob, ScanContext
from mlsec.scan.formats import _inflate
from mlsec.scan.formats._members import budget_exhausted
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
    except (zlib.error, OSError, EOFError, ValueError) as exc:
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
        what = (
            f"more than {cap} bytes"
            if out.limit == "size"
            else f"more than {ctx.limits.max_ratio}x its compressed size"
        )
        yield ctx.finding(
            "DECOMPRESSION-BOMB"
            if cap == ctx.limits.max_member_size or out.limit == "ratio"
            else "EXTRACT-LIMIT",
            Severity.HIGH,
            f"{kind} stream decompresses to {what}; only the first {len(out.data)} bytes were "
            "inspected",
            why="Decompression bombs exhaust memory; the part not inspected may hide a payload.",
        )
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
