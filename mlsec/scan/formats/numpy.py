"""Format.NUMPY: a ``.npy`` file (or an npz member handed back by the zip analyzer).

The header is a Python dict literal, parsed with ``ast.literal_eval`` (literals only, bounded
size). An array of object dtype stores a pickle after the header: it goes to the pickle analyzer.
NumPy itself is never imported (it is heavy, and it is what would unpickle).
"""

from __future__ import annotations

import ast
import re
import struct
import warnings
from collections.abc import Iterator
from typing import Any

from mlsec.scan.base import Blob, ScanContext
from mlsec.scan.model import Finding, Severity
from mlsec.scan.pickle.driver import analyze_pickle

__all__ = ["analyze"]

_MAGIC = b"\x93NUMPY"
_MAX_HEADER = 1024 * 1024
_DESCR = re.compile(r"[<>|=]?([a-zA-Z])(\d*)(?:\[\w+\])?")
_SIZES = {"b": 1, "B": 1, "?": 1, "h": 2, "H": 2, "e": 2, "i": 4, "I": 4, "f": 4, "l": 8, "q": 8}
_SIZES |= {"L": 8, "Q": 8, "d": 8, "g": 16, "F": 8, "D": 16, "G": 32, "O": 8, "M": 8, "m": 8}
_SIZED = frozenset("iufcbSaVUMm")


def _has_object(descr: object, depth: int = 0) -> bool:
    if depth > 32:
        return True
    if isinstance(descr, str):
        m = _DESCR.fullmatch(descr)
        return m is None or m.group(1) == "O"
    if isinstance(descr, list | tuple):
        return any(_has_object(d, depth + 1) for d in descr if not isinstance(d, int))
    return True  # anything else is not a dtype NumPy writes


def _itemsize(descr: str) -> int | None:
    m = _DESCR.fullmatch(descr)
    if m is None:
        return None
    code, digits = m.group(1), m.group(2)
    if code in _SIZED and digits:
        n = int(digits)
        return n * 4 if code == "U" else n
    return _SIZES.get(code)


def _parse_header(data: Any) -> tuple[dict[str, Any], int]:
    if len(data) < 10 or bytes(data[:6]) != _MAGIC:
        raise ValueError("not a .npy file (bad magic)")
    major = data[6]
    if major == 1:
        (hlen,) = struct.unpack_from("<H", data, 8)
        start = 10
    elif major in (2, 3):
        (hlen,) = struct.unpack_from("<I", data, 8)
        start = 12
    else:
        raise ValueError(f"unsupported .npy version {major}")
    if hlen > _MAX_HEADER or start + hlen > len(data):
        raise ValueError(f"header length {hlen} is out of bounds")
    text = bytes(data[start : start + hlen]).decode("utf-8" if major == 3 else "latin-1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # hostile headers make the parser warn on stderr
        header = ast.literal_eval(text)
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise ValueError("header is not a dict with exactly descr, fortran_order and shape")
    shape = header["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ValueError(f"bad shape {shape!r}")
    if not isinstance(header["fortran_order"], bool):
        raise ValueError("fortran_order is not a bool")
    return header, start + hlen


def analyze(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """Check a .npy header; scan an object array's pickle."""
    with blob.view() as mv:
        found = list(_analyze(mv, ctx))
    yield from found


def _analyze(data: Any, ctx: ScanContext) -> Iterator[Finding]:
    try:
        header, offset = _parse_header(data)
    except (ValueError, SyntaxError, MemoryError, RecursionError, UnicodeDecodeError) as exc:
        yield ctx.finding(
            "NUMPY-BAD-HEADER",
            Severity.HIGH,
            f"malformed .npy header: {exc}",
            why="A loader may read what the scanner could not parse (fail closed).",
        )
        return
    descr = header["descr"]
    if _has_object(descr):
        # numpy.load(allow_pickle=True) unpickles everything after the header.
        yield from analyze_pickle(data, ctx, start=offset)
        return
    assert isinstance(descr, str | list | tuple)
    size = _itemsize(descr) if isinstance(descr, str) else None
    if size is None:
        return  # structured dtypes without objects: nothing executable, size not checked
    count = 1
    for d in header["shape"]:
        count *= d
    expected = offset + count * size
    if len(data) > expected:
        yield ctx.finding(
            "NUMPY-TRAILING-DATA",
            Severity.MEDIUM,
            f"{len(data) - expected} bytes after the array data",
            why="numpy.load ignores them, but another reader may not: a place to hide a payload.",
            offset=expected,
        )
    elif len(data) < expected:
        yield ctx.finding(
            "NUMPY-TRUNCATED",
            Severity.LOW,
            f"array data is {expected - len(data)} bytes shorter than the header says",
        )
