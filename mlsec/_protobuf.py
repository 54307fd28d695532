"""The one protobuf wire-format reader of mlsec: the sniffer (:mod:`mlsec.formats`) and the ONNX,
TensorFlow and TorchScript analyzers all decode varints and field keys here, so that what decides a
file is protobuf and what walks its fields can never read the same bytes two ways.

Decoding follows the protobuf C++ parser: a varint is at most 10 bytes (bits past 64 dropped), a
key's field number is 1 .. 2**29-1, and wire types 0, 1, 2 and 5 carry data. Groups (wire types 3
and 4, deprecated and used by none of the formats read here) are refused, so a message that uses
them is a parse error — fail closed — rather than skipped. Every read is bounds-checked against
the enclosing message; malformed input raises ValueError (the scanner turns it into a PARSE-ERROR
finding).

This module imports nothing from mlsec: it sits below both the sniffer and the scanner.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

__all__ = ["MAX_FIELD", "Buffer", "fields", "key", "prefix_fields", "text", "varint"]

MAX_FIELD = (1 << 29) - 1
_MASK64 = (1 << 64) - 1
_MAX_LENGTH = (1 << 31) - 1  # the C++ parser reads sizes as int and refuses larger ones


class Buffer(Protocol):
    def __getitem__(self, i: int, /) -> int: ...

    def __len__(self) -> int: ...


def varint(buf: Buffer | memoryview | bytes, pos: int, end: int) -> tuple[int, int]:
    """The varint at ``buf[pos]`` (read no further than ``end``) and the offset after it."""
    result = shift = 0
    for _ in range(10):
        if pos >= end:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result & _MASK64, pos
        shift += 7
    raise ValueError("varint longer than 10 bytes")


def key(buf: Buffer | memoryview | bytes, pos: int, end: int) -> tuple[int, int, int]:
    """A field key: ``(field number, wire type, offset after it)``."""
    k, after = varint(buf, pos, end)
    field, wire = k >> 3, k & 7
    if not 1 <= field <= MAX_FIELD:
        raise ValueError(f"invalid field number {field} at offset {pos}")
    if wire not in (0, 1, 2, 5):
        raise ValueError(f"unsupported wire type {wire} at offset {pos}")
    return field, wire, after


def _payload(buf: Buffer | memoryview | bytes, wire: int, pos: int, end: int) -> tuple[int, int]:
    """Where the payload of a non-varint field starts and ends (its end may lie beyond ``end``)."""
    if wire == 2:
        n, pos = varint(buf, pos, end)
        if n > _MAX_LENGTH:
            raise ValueError(f"length {n} exceeds the 2 GiB protobuf limit at offset {pos}")
    elif wire == 1:
        n = 8
    else:
        n = 4
    return pos, pos + n


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
        field, wire, pos = key(buf, pos, end)
        if wire == 0:
            value, pos = varint(buf, pos, end)
            yield field, 0, value, 0
            continue
        a, b = _payload(buf, wire, pos, end)
        if b > end:
            raise ValueError(f"field {field} runs past the end of its message")
        yield field, wire, a, b
        pos = b


def prefix_fields(head: bytes, limit: int = 8) -> list[tuple[int, int]] | None:
    """``(field number, wire type)`` of the first top-level fields of a message of which ``head``
    is a prefix, or None if the bytes are not one. A field cut by the end of the prefix still
    counts; anything :func:`fields` would refuse before that point means "not protobuf"."""
    found: list[tuple[int, int]] = []
    pos, end = 0, len(head)
    while pos < end and len(found) < limit:
        try:
            field, wire, pos = key(head, pos, end)
        except ValueError:
            if found and _cut(head, pos):
                break
            return None
        found.append((field, wire))
        try:
            if wire == 0:
                _, pos = varint(head, pos, end)
            else:
                _, pos = _payload(head, wire, pos, end)
        except ValueError:
            if _cut(head, pos):
                break  # the prefix ends inside this field
            return None
    return found or None


def _cut(head: bytes, pos: int) -> bool:
    """The key at ``pos`` failed only because the prefix ends inside it."""
    tail = head[pos : pos + 10]
    return len(tail) < 10 and all(b & 0x80 for b in tail)


def text(buf: memoryview | bytes, a: int, b: int) -> str:
    """A string field's value (invalid UTF-8 replaced, so names stay printable)."""
    return bytes(buf[a:b]).decode("utf-8", "replace")
