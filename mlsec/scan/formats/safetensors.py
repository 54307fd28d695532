"""safetensors: a JSON header then raw tensor bytes. Nothing executes, so the checks are about
structure: a header the official loader would reject, offsets a hand-written loader would trust
out of bounds, and bytes no tensor accounts for (where a second payload can hide).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from typing import Any

from mlsec.formats import PREFIX_SIZE
from mlsec.scan.base import Blob, ScanContext
from mlsec.scan.formats._members import sniff_member, worth_dispatching
from mlsec.scan.model import Finding, Severity

__all__ = ["analyze_safetensors"]

_MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's own limit

# bits per element
_DTYPES = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "F64": 64,
    "I64": 64,
    "U64": 64,
    "C64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r} in header")
        out[k] = v
    return out


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def analyze_safetensors(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """Validate a safetensors header and the byte layout it describes."""
    yield from _analyze(blob, ctx)


def _analyze(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    head = blob.head(8)
    if len(head) < 8:
        yield _bad(ctx, "file is shorter than the 8-byte header length")
        return
    (n,) = struct.unpack("<Q", head)
    if n > _MAX_HEADER or 8 + n > blob.size:
        yield _bad(ctx, f"header length {n} exceeds the file or the 100 MiB limit")
        return
    with blob.open() as f:
        f.seek(8)
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        yield _bad(ctx, f"header is not valid JSON ({exc})")
        return
    if not isinstance(header, dict):
        yield _bad(ctx, "header is not a JSON object")
        return
    data_start = 8 + n
    data_len = blob.size - data_start
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if name == "__metadata__":
            yield from _metadata(info, ctx)
            continue
        problem = _tensor_problem(info, data_len)
        if problem:
            yield ctx.finding(
                "SAFETENSORS-INVALID-TENSOR",
                Severity.HIGH if "outside" in problem else Severity.MEDIUM,
                f"tensor {name!r}: {problem}",
                why="The reference loader rejects it; hand-written loaders that trust offsets "
                "and shapes read out of bounds.",
                symbol=name,
            )
            continue
        begin, end = info["data_offsets"]
        spans.append((begin, end, name))
    yield from _layout(blob, ctx, spans, data_start, data_len)


def _tensor_problem(info: object, data_len: int) -> str | None:
    if not isinstance(info, dict):
        return "entry is not an object"
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        return f"unknown dtype {dtype!r}"
    if not isinstance(shape, list) or not all(_is_int(d) for d in shape):
        return f"invalid shape {shape!r}"
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_int(o) for o in offsets)
        or offsets[0] > offsets[1]
    ):
        return f"invalid data_offsets {offsets!r}"
    if offsets[1] > data_len:
        return f"data_offsets {offsets} point outside the file ({data_len} data bytes)"
    nbytes = math.ceil(math.prod(shape) * _DTYPES[dtype] / 8)
    if nbytes != offsets[1] - offsets[0]:
        span = offsets[1] - offsets[0]
        return f"shape {shape} of {dtype} needs {nbytes} bytes, data_offsets span {span}"
    return None


def _metadata(info: object, ctx: ScanContext) -> Iterator[Finding]:
    if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
        yield ctx.finding(
            "SAFETENSORS-INVALID-METADATA",
            Severity.MEDIUM,
            "__metadata__ is not a mapping of strings to strings",
            why="The reference loader rejects it; other readers may pass it on unchecked.",
        )


def _layout(
    blob: Blob, ctx: ScanContext, spans: list[tuple[int, int, str]], start: int, length: int
) -> Iterator[Finding]:
    spans.sort()
    pos = 0
    for begin, end, name in spans:
        if begin < pos:
            yield ctx.finding(
                "SAFETENSORS-OVERLAP",
                Severity.HIGH,
                f"tensor {name!r} overlaps the previous tensor (offset {begin} < {pos})",
                why="Overlapping tensors are rejected by the reference loader and can make other "
                "readers alias or corrupt memory.",
                symbol=name,
                offset=start + begin,
            )
        elif begin > pos:
            yield from _unaccounted(blob, ctx, start + pos, begin - pos, "gap before " + repr(name))
        pos = max(pos, end)
    if pos < length:
        yield from _unaccounted(blob, ctx, start + pos, length - pos, "trailing data")


def _unaccounted(
    blob: Blob, ctx: ScanContext, offset: int, size: int, what: str
) -> Iterator[Finding]:
    yield ctx.finding(
        "SAFETENSORS-HIDDEN-DATA",
        Severity.MEDIUM,
        f"{size} bytes that belong to no tensor ({what})",
        why="Bytes outside every tensor are invisible to safetensors but can carry a second "
        "payload (a pickle read by another loader).",
        offset=offset,
    )
    sub = blob.window(f"<unaccounted@{offset}>", offset, size)
    head = sub.head(PREFIX_SIZE)
    if worth_dispatching(sniff_member(head, ""), prefix=head, whole=sub.size <= len(head)):
        yield from ctx.scan_nested(sub, f"<bytes@{offset}>")


def _bad(ctx: ScanContext, message: str) -> Finding:
    return ctx.finding(
        "PARSE-ERROR",
        Severity.HIGH,
        f"{ctx.member or ctx.file}: not a valid safetensors file: {message}",
        why="What the scanner cannot parse may hide a payload; loaders are often more lenient.",
    )
