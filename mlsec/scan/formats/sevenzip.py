"""7z archives: signature-header sanity, then a fail-closed finding.

Decoding 7z (LZMA/LZMA2/BCJ folders, encoded headers) needs a dedicated library that mlsec does
not depend on at runtime, so members are not inspected. That is reported as a high finding:
nullifAI (ReversingLabs, 2025) shipped PyTorch models compressed with 7z precisely because
scanners did not look inside, while a loader that unpacks them runs the pickle.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

from mlsec.scan.base import Blob, ScanContext
from mlsec.scan.model import Finding, Severity

__all__ = ["analyze_7z"]

_MAGIC = b"7z\xbc\xaf\x27\x1c"


def analyze_7z(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """Check the 7z signature header and report that the content cannot be inspected."""
    head = blob.head(32)
    if len(head) < 32 or not head.startswith(_MAGIC):
        raise ValueError("truncated 7z signature header")
    major = head[6]
    start_crc, next_offset, next_size, next_crc = struct.unpack_from("<IQQI", head, 8)
    if major != 0:
        raise ValueError(f"unknown 7z format version {major}.{head[7]}")
    if zlib.crc32(head[12:32]) != start_crc:
        raise ValueError("7z start header CRC mismatch")
    end = 32 + next_offset + next_size
    if next_size == 0 or end > blob.size or next_size > 64 * 1024 * 1024:
        raise ValueError(f"7z next header ({next_size} bytes at {32 + next_offset}) is invalid")
    with blob.open() as f:
        f.seek(32 + next_offset)
        header = f.read(next_size)
    if zlib.crc32(header) != next_crc:
        raise ValueError("7z header CRC mismatch")
    kind = {0x01: "plain", 0x17: "compressed"}.get(header[0])
    if kind is None:
        raise ValueError(f"unknown 7z header type 0x{header[0]:02x}")
    yield ctx.finding(
        "SEVENZIP-UNINSPECTED",
        Severity.HIGH,
        f"{ctx.member or ctx.file}: 7z archive ({kind} header, {next_offset} bytes of packed "
        "data); its members cannot be inspected",
        why="Scanners that skip 7z were bypassed by nullifAI (ReversingLabs, 2025): PyTorch "
        "models packed with 7z carried pickles nobody scanned. Unpack it and scan the content.",
    )
