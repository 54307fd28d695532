"""A small, bounded HDF5 reader: the root group's attributes of ordinary files, for when h5py
is not installed.

Enough of the format (superblock v0-v3, object headers v1 and v2 with continuations, compact
attribute messages v1-v3, fixed and variable-length strings in the global heap) to read what h5py
writes for a Keras model. Dense attribute storage (fractal heaps), shared messages and anything
else unexpected raise :class:`Unsupported`; every read is bounds-checked against the file.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["NotText", "Unsupported", "root_attributes"]


class Unsupported(Exception):
    """The file uses HDF5 features this reader does not read."""


_MAX_MESSAGES = 4096
_MAX_CHUNKS = 64


class _H5:
    def __init__(self, buf: memoryview) -> None:
        self.buf = buf
        self.base = 0
        self.o = 8
        self.ln = 8

    def raw(self, pos: int, n: int) -> bytes:
        if pos < 0 or n < 0 or pos + n > len(self.buf):
            raise Unsupported(f"structure at {pos} runs past the end of the file")
        return bytes(self.buf[pos : pos + n])

    def uint(self, pos: int, n: int) -> int:
        return int.from_bytes(self.raw(pos, n), "little")

    def addr(self, pos: int) -> int | None:
        value = self.uint(pos, self.o)
        return None if value == (1 << (8 * self.o)) - 1 else self.base + value


def root_attributes(
    buf: memoryview, names: tuple[str, ...], max_size: int
) -> list[tuple[str, object]]:
    """The root group's attributes called one of ``names``: (name, bytes or :class:`NotText`),
    in file order, duplicates included. Raises :class:`Unsupported`."""
    h = _H5(buf)
    sb = -1
    for at in (0, *(512 << i for i in range(40))):
        if at + 8 > len(buf):
            break
        if bytes(buf[at : at + 8]) == b"\x89HDF\r\n\x1a\n":
            sb = at
            break
    if sb < 0:
        raise Unsupported("no HDF5 superblock")
    version = h.uint(sb + 8, 1)
    if version in (0, 1):
        h.o, h.ln = h.uint(sb + 13, 1), h.uint(sb + 14, 1)
        pos = sb + 24 + (4 if version == 1 else 0)
        h.base = h.uint(pos, h.o)
        entry = pos + 4 * h.o  # base, free space, end of file, driver info, then the root entry
        root = h.addr(entry + h.o)
    elif version in (2, 3):
        h.o, h.ln = h.uint(sb + 9, 1), h.uint(sb + 10, 1)
        h.base = h.uint(sb + 12, h.o)
        root = h.addr(sb + 12 + 3 * h.o)
    else:
        raise Unsupported(f"superblock version {version}")
    if h.o not in (2, 4, 8) or h.ln not in (2, 4, 8) or root is None:
        raise Unsupported("unusual superblock")
    out: list[tuple[str, object]] = []
    for mtype, flags, data in _messages(h, root):
        if mtype == 0x15 and _dense(h, data):
            raise Unsupported("dense attribute storage")
        if mtype != 0x0C:
            continue
        if flags & 0x02:
            raise Unsupported("shared attribute message")
        name, value = _attribute(h, data, max_size)
        if name in names:
            out.append((name, value))
    return out


def _messages(h: _H5, addr: int) -> Iterator[tuple[int, int, int]]:
    """(type, flags, data offset) of every message of the object header at ``addr``."""
    chunks: list[tuple[int, int, int]] = []  # (start, end, header version)
    if h.raw(addr, 4) == b"OHDR":
        flags = h.uint(addr + 5, 1)
        pos = addr + 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
        width = 1 << (flags & 3)
        size = h.uint(pos, width)
        chunks.append((pos + width, pos + width + size, 2))
        creation = bool(flags & 0x04)
    elif h.uint(addr, 1) == 1:
        size = h.uint(addr + 8, 4)
        chunks.append((addr + 16, addr + 16 + size, 1))
        creation = False
    else:
        raise Unsupported("unknown object header version")
    count = 0
    i = 0
    while i < len(chunks):
        start, end, v = chunks[i]
        i += 1
        pos = start
        while pos < end:
            if v == 1:
                if pos + 8 > end:
                    break
                mtype, msize, mflags = h.uint(pos, 2), h.uint(pos + 2, 2), h.uint(pos + 4, 1)
                data = pos + 8
            else:
                if pos + 4 > end:
                    break  # gap before the checksum
                mtype, msize, mflags = h.uint(pos, 1), h.uint(pos + 1, 2), h.uint(pos + 3, 1)
                data = pos + 4 + (2 if creation else 0)
            if data + msize > end:
                raise Unsupported("object header message runs past its chunk")
            count += 1
            if count > _MAX_MESSAGES:
                raise Unsupported("too many object header messages")
            if mtype == 0x10:  # continuation
                cont, length = h.addr(data), h.uint(data + h.o, h.ln)
                if cont is None or len(chunks) >= _MAX_CHUNKS:
                    raise Unsupported("bad object header continuation")
                if v == 2:
                    if h.raw(cont, 4) != b"OCHK":
                        raise Unsupported("bad continuation chunk")
                    chunks.append((cont + 4, cont + length - 4, 2))
                else:
                    chunks.append((cont, cont + length, 1))
            else:
                yield mtype, mflags, data
            pos = data + msize


def _dense(h: _H5, data: int) -> bool:
    flags = h.uint(data + 1, 1)
    heap = data + 2 + (2 if flags & 1 else 0)
    return h.addr(heap) is not None


def _attribute(h: _H5, pos: int, max_size: int) -> tuple[str, object]:
    version, flags = h.uint(pos, 1), h.uint(pos + 1, 1)
    nsize, tsize, ssize = h.uint(pos + 2, 2), h.uint(pos + 4, 2), h.uint(pos + 6, 2)
    if version not in (1, 2, 3) or (version > 1 and flags & 0x03):
        raise Unsupported(f"attribute message version {version} flags {flags}")

    def pad(n: int) -> int:
        return -(-n // 8) * 8 if version == 1 else n

    p = pos + 8 + (1 if version == 3 else 0)
    name = h.raw(p, nsize).split(b"\0", 1)[0].decode("utf-8", "replace")
    p += pad(nsize)
    dtype = p
    p += pad(tsize)
    space = p
    p += pad(ssize)
    n = _elements(h, space)
    cls, size = h.uint(dtype, 1) & 0x0F, h.uint(dtype + 4, 4)
    if size > max_size:
        raise Unsupported(f"attribute {name} of {size} bytes")
    if n != 1:
        return name, NotText("an array")
    if cls == 3:  # fixed-length string
        text = h.raw(p, size)
        return name, text.split(b"\0", 1)[0] if h.uint(dtype + 1, 1) & 0x0F == 0 else text.rstrip(
            b"\0"
        )
    if cls == 9 and h.uint(dtype + 1, 1) & 0x0F == 1:  # variable-length string
        length = h.uint(p, 4)
        if length > max_size:
            raise Unsupported(f"attribute {name} of {length} bytes")
        return name, _global_heap(h, h.addr(p + 4), h.uint(p + 4 + h.o, 4), length)
    return name, NotText(f"HDF5 datatype class {cls}")


def _elements(h: _H5, pos: int) -> int:
    version, rank = h.uint(pos, 1), h.uint(pos + 1, 1)
    if version == 1:
        dims = pos + 8
    elif version == 2:
        if h.uint(pos + 3, 1) == 2:
            return 0  # null dataspace
        dims = pos + 4
    else:
        raise Unsupported(f"dataspace version {version}")
    count = 1
    for i in range(min(rank, 32)):
        count *= h.uint(dims + i * h.ln, h.ln)
    return count


def _global_heap(h: _H5, addr: int | None, index: int, length: int) -> bytes:
    if addr is None or h.raw(addr, 4) != b"GCOL":
        raise Unsupported("bad global heap reference")
    end = addr + h.uint(addr + 8, h.ln)
    pos = addr + 8 + h.ln
    while pos + 8 + h.ln <= end:
        idx, size = h.uint(pos, 2), h.uint(pos + 8, h.ln)
        if idx == 0:
            break
        if idx == index:
            return h.raw(pos + 8 + h.ln, min(size, length))
        pos += 8 + h.ln + -(-size // 8) * 8
    raise Unsupported("global heap object not found")


class NotText:
    """An attribute value that is not a string (its type named)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
