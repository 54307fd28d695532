"""Format.NUMPY: a ``.npy`` file (or an npz member handed back by the zip analyzer).

The header is a Python dict literal, parsed as numpy parses it (``ast.literal_eval``, literals
only, bounded size; Python 2 longs filtered). Its ``descr`` is read the way
``numpy.lib.format.descr_to_dtype`` reads it: simple, sub-array and structured (record) dtypes,
nested. An array whose dtype holds an object field stores a pickle after the header: it goes to
the pickle analyzer. Any other array is plain data whose size is checked against the file.
NumPy itself is never imported (it is heavy, and it is what would unpickle).
"""

from __future__ import annotations

import ast
import io
import re
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mlsec.scan.base import Blob, ScanContext
from mlsec.scan.model import Finding, Severity
from mlsec.scan.pickle.driver import analyze_pickle

__all__ = ["analyze"]

_MAGIC = b"\x93NUMPY"
_MAX_HEADER = 1024 * 1024
_MAX_DEPTH = 32  # nesting of structured dtypes (numpy's own limit on dimensions is 64)
_MAX_FIELDS = 100_000
# A simple dtype string as dtype.str writes it: byte order, kind, size, datetime unit.
_DESCR = re.compile(r"[<>|=]?([a-zA-Z?])(\d*)(?:\[(\d*\w+)\])?")
_SIZES = {"b": 1, "B": 1, "?": 1, "h": 2, "H": 2, "e": 2, "i": 4, "I": 4, "f": 4, "l": 8, "q": 8}
_SIZES |= {"L": 8, "Q": 8, "d": 8, "g": 16, "F": 8, "D": 16, "G": 32, "O": 8, "M": 8, "m": 8}
_SIZES |= {"p": 8, "P": 8, "n": 8, "N": 8}
_SIZED = frozenset("iufcbSaVUMmO")


@dataclass(frozen=True, slots=True)
class _Dtype:
    """What the scanner needs of a dtype: whether it holds Python objects (then ``numpy.load``
    unpickles the data) and its item size in bytes (None when it cannot be known statically)."""

    has_object: bool
    itemsize: int | None


class _BadDescr(ValueError):
    pass


def _simple(descr: str) -> _Dtype:
    m = _DESCR.fullmatch(descr)
    if m is None:
        raise _BadDescr(f"descr {descr!r} is not a dtype string numpy writes")
    code, digits = m.group(1), m.group(2)
    if code == "O":
        return _Dtype(True, 8)
    if code in _SIZED and digits:
        n = int(digits)
        return _Dtype(False, n * 4 if code == "U" else n)
    if code not in _SIZES:
        raise _BadDescr(f"descr {descr!r} has an unknown type code {code!r}")
    return _Dtype(False, _SIZES[code])


def _count(shape: object) -> int:
    dims = shape if isinstance(shape, tuple) else (shape,)
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims):
        raise _BadDescr(f"sub-array shape {shape!r} is not a tuple of sizes")
    n = 1
    for d in dims:
        n *= d
    return n


def _dtype(descr: object, depth: int = 0) -> _Dtype:
    """The dtype a header's ``descr`` describes, read as ``numpy.lib.format.descr_to_dtype``
    reads it: a dtype string, a ``(descr, shape)`` sub-array, or a list of fields ``(name,
    descr)`` / ``(name, descr, shape)`` whose name may be a ``(title, name)`` pair. Anything
    else raises (numpy.load refuses it too)."""
    if depth > _MAX_DEPTH:
        raise _BadDescr(f"dtype nested more than {_MAX_DEPTH} levels deep")
    if isinstance(descr, str):
        return _simple(descr)
    if isinstance(descr, tuple):
        if len(descr) != 2:
            raise _BadDescr("a sub-array descr is (descr, shape)")
        return _scaled(_dtype(descr[0], depth + 1), descr[1])
    if not isinstance(descr, list) or len(descr) > _MAX_FIELDS:
        raise _BadDescr(f"descr of type {type(descr).__name__} is not a dtype")
    has_object = False
    size: int | None = 0
    for field in descr:
        if not isinstance(field, tuple) or len(field) not in (2, 3):
            raise _BadDescr("a structured dtype field is (name, descr) or (name, descr, shape)")
        name = field[0]
        if not (
            isinstance(name, str)
            or (
                isinstance(name, tuple) and len(name) == 2 and all(isinstance(n, str) for n in name)
            )
        ):
            raise _BadDescr(f"field name {name!r} is not a string or a (title, name) pair")
        dt = _dtype(field[1], depth + 1)
        if len(field) == 3:
            dt = _scaled(dt, field[2])
        has_object = has_object or dt.has_object
        size = None if size is None or dt.itemsize is None else size + dt.itemsize
    return _Dtype(has_object, size)


def _scaled(dt: _Dtype, shape: object) -> _Dtype:
    n = _count(shape)
    return _Dtype(dt.has_object, None if dt.itemsize is None else dt.itemsize * n)


def _python2_header(text: str) -> str:
    """numpy's ``_filter_header``: headers written by Python 2 spell longs ``3L``; numpy drops
    the ``L`` for format versions up to 2.0 before parsing again."""
    import tokenize

    tokens: list[tuple[int, str]] = []
    last_number = False
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if last_number and tok.type == tokenize.NAME and tok.string == "L":
            continue
        tokens.append((tok.type, tok.string))
        last_number = tok.type == tokenize.NUMBER
    return tokenize.untokenize(tokens)


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
        try:
            header = ast.literal_eval(text)  # numpy's own parser of the header
        except SyntaxError:
            if major == 3:
                raise
            header = ast.literal_eval(_python2_header(text))
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
    try:
        dtype = _dtype(header["descr"])
    except (_BadDescr, RecursionError) as exc:
        yield ctx.finding(
            "NUMPY-BAD-HEADER",
            Severity.HIGH,
            f"malformed .npy header: {exc}",
            why="A loader may read what the scanner could not parse (fail closed).",
        )
        return
    if dtype.has_object:
        # numpy.load(allow_pickle=True) unpickles everything after the header.
        yield from analyze_pickle(data, ctx, start=offset)
        return
    size = dtype.itemsize
    if size is None:
        return
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
