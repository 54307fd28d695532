"""How CPython's C unpickler reads a framed pickle from a file object that has no ``peek``.

``pickle.loads(data)`` (and ``pickle.load`` on a buffered file while its frames fit in the read-
ahead buffer) reads the bytes contiguously: a FRAME only checks that its bytes exist. But
``_Unpickler_ReadImpl`` in ``Modules/_pickle.c`` reads a FRAME's bytes into its input buffer and
serves later reads from that buffer; a read that does not fit in what is left of the buffer
*drops* the rest of the buffer and takes its bytes from the file after it. That is what
``torch.load(weights_only=False)`` (a ``BytesIO``), ``pickle.load`` on an unbuffered file, or on
a buffered one with frames larger than its read-ahead do. A stream whose opcodes straddle a
frame's end therefore runs other opcodes there than under ``pickle.loads``.

:func:`file_reading` replays that reader over the bytes and returns the opcodes it would run, as
one contiguous stream (FRAME opcodes removed) that the static VM can analyse. Opcode argument
sizes come from :mod:`pickletools`, so no opcode table is kept by hand.
"""

from __future__ import annotations

import pickletools
from typing import Any

__all__ = ["MAX_REPLAY", "file_reading"]

MAX_REPLAY = 64 * 1024 * 1024  # bytes of opcodes a replay copies at most

_FIXED: dict[int, int] = {}
_COUNTED: dict[int, tuple[int, bool]] = {}  # opcode -> (size of the length field, signed)
_LINES: dict[int, int] = {}  # opcode -> number of line arguments
for _op in pickletools.opcodes:
    _code = ord(_op.code.encode("latin-1"))
    _arg = _op.arg
    if _arg is None:
        _FIXED[_code] = 0
    elif _arg.n >= 0:
        _FIXED[_code] = _arg.n
    elif _arg.n == pickletools.UP_TO_NEWLINE:
        _LINES[_code] = 1
    else:
        _COUNTED[_code] = {
            pickletools.TAKEN_FROM_ARGUMENT1: (1, False),
            pickletools.TAKEN_FROM_ARGUMENT4: (4, True),
            pickletools.TAKEN_FROM_ARGUMENT4U: (4, False),
            pickletools.TAKEN_FROM_ARGUMENT8U: (8, False),
        }[_arg.n]
# GLOBAL and INST take two lines (pickletools describes them as one "stringnl_noescape_pair").
_LINES[ord("c")] = 2
_LINES[ord("i")] = 2
_FIXED.pop(ord("c"), None)
_FIXED.pop(ord("i"), None)
_FRAME = 0x95
_STOP = 0x2E


class _Stop(Exception):
    """The C unpickler fails here (truncated data, unknown opcode)."""


class _FileReader:
    """``_Unpickler_Read`` / ``_Unpickler_Readline`` on a file without ``peek``."""

    __slots__ = ("buf_end", "data", "end", "events", "idx", "mask", "nbits", "out", "size", "split")

    def __init__(self, data: Any, start: int, end: int, mask: int = 0, nbits: int = 0) -> None:
        self.data = data
        self.idx = start
        self.end = end
        self.buf_end = -1  # end of the buffered frame; -1: nothing buffered
        self.out: list[bytes] = []
        self.size = 0
        self.split = False  # a read dropped buffered bytes
        # A buffered file (``peek``) serves some frames from its read-ahead (read contiguously)
        # and reads others into their own buffer: bit k of ``mask`` (for the first ``nbits``
        # straddles) says the k-th straddle is read contiguously; all others drop.
        self.events = 0
        self.mask = mask
        self.nbits = nbits

    def _drop(self) -> bool:
        k = self.events
        self.events += 1
        if k < self.nbits and self.mask >> k & 1:
            return False
        self.split = True
        return True

    def _take(self, a: int, b: int, keep: bool) -> bytes:
        if b > self.end:
            raise _Stop
        chunk = bytes(self.data[a:b])
        if keep:
            self.size += b - a
            if self.size > MAX_REPLAY:
                raise _Stop
            self.out.append(chunk)
        return chunk

    def read(self, n: int, keep: bool = True) -> bytes:
        i = self.idx
        if self.buf_end >= 0:
            if i + n <= self.buf_end:
                self.idx = i + n
                if self.idx == self.buf_end:
                    self.buf_end = -1
                return self._take(i, i + n, keep)
            if self._drop():
                i = self.buf_end  # the rest of the buffer is dropped
            self.buf_end = -1
        self.idx = i + n
        return self._take(i, i + n, keep)

    def readline(self) -> None:
        data = self.data
        i = self.idx
        if self.buf_end >= 0:
            nl = _find(data, i, self.buf_end)
            if nl >= 0:
                self.idx = nl + 1
                if self.idx == self.buf_end:
                    self.buf_end = -1
                self._take(i, nl + 1, True)
                return
            if self._drop():
                i = self.buf_end
            self.buf_end = -1
        nl = _find(data, i, self.end)
        if nl < 0:
            raise _Stop  # "pickle data was truncated"
        self.idx = nl + 1
        self._take(i, nl + 1, True)

    def frame(self) -> None:
        n = int.from_bytes(self.read(8, keep=False), "little")
        i = self.idx
        if self.buf_end >= 0 and i + n <= self.buf_end:
            return  # inside the buffer: only checked (the buffer end stays)
        if self.buf_end >= 0 and self._drop():
            i = self.buf_end
        if i + n > self.end:
            raise _Stop
        self.idx = i
        self.buf_end = i + n if n else -1


def _find(data: Any, a: int, b: int) -> int:
    if hasattr(data, "find"):
        return int(data.find(b"\n", a, b))
    chunk = bytes(data[a:b])
    i = chunk.find(b"\n")
    return a + i if i >= 0 else -1


def file_reading(
    data: Any, start: int, end: int, max_ops: int, mask: int = 0, nbits: int = 0
) -> tuple[bytes, bool, int, int]:
    """The opcodes a frame-buffering file reader runs from ``start``, whether that reading differs
    from the contiguous one, where that reader's next stream starts (-1 when it fails before
    STOP), and how many reads ran across a buffered frame's end. ``mask``/``nbits`` read some of
    those contiguously (a buffered file's mixture). The replay stops at STOP or where it fails."""
    r = _FileReader(data, start, end, mask, nbits)
    ops = 0
    try:
        while ops < max_ops:
            ops += 1
            op = r.read(1, keep=False)[0]
            if op == _FRAME:
                r.frame()
                continue
            r.out.append(bytes((op,)))
            if op in _FIXED:
                if _FIXED[op]:
                    r.read(_FIXED[op])
            elif op in _COUNTED:
                width, signed = _COUNTED[op]
                n = int.from_bytes(r.read(width), "little", signed=signed)
                if n < 0:
                    break
                r.read(n)
            elif op in _LINES:
                for _ in range(_LINES[op]):
                    r.readline()
            else:
                break  # unknown opcode: the unpickler fails
            if op == _STOP:
                # The file is past the buffered frame: the next load starts after it.
                return b"".join(r.out), r.split, max(r.idx, r.buf_end), r.events
    except _Stop:
        pass
    return b"".join(r.out), r.split, -1, r.events
