"""A minimal protobuf wire-format reader over a buffer: enough to walk ONNX and TensorFlow graphs
without their libraries. Every read is bounds-checked against the enclosing message; malformed
input raises ValueError (the dispatcher turns it into a PARSE-ERROR finding)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

__all__ = ["Buffer", "fields", "text"]


class Buffer(Protocol):
    def __getitem__(self, i: int, /) -> int: ...

    def __len__(self) -> int: ...


def _varint(buf: Buffer | memoryview | bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def fields(
    buf: memoryview | bytes, start: int = 0, end: int | None = None
) -> Iterator[tuple[int, int, int, int]]:
    """Yield ``(field, wire_type, a, b)`` for each field of the message in ``buf[start:end]``.

    Varints give their value in ``a``; length-delimited and fixed-width fields give the byte range
    ``[a, b)`` of their payload.
    """
    end = len(buf) if end is None else end
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ValueError(f"field number 0 at offset {pos}")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield field, 0, value, 0
            continue
        if wire == 2:
            n, pos = _varint(buf, pos, end)
        elif wire == 1:
            n = 8
        elif wire == 5:
            n = 4
        else:
            raise ValueError(f"unsupported wire type {wire} at offset {pos}")
        if pos + n > end:
            raise ValueError(f"field {field} runs past the end of its message")
        yield field, wire, pos, pos + n
        pos += n


def text(buf: memoryview | bytes, a: int, b: int) -> str:
    """A string field's value (invalid UTF-8 replaced, so names stay printable)."""
    return bytes(buf[a:b]).decode("utf-8", "replace")
