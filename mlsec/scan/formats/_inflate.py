"""Bounded stream decompression, shared by the zip, tar and compressed-stream analyzers.

Decompression never produces more than a cap, never reads more input than it is given, and stops
when the output grows much faster than the input (a decompression bomb). The caller turns a limit
hit into a finding: what was not decompressed was not inspected.
"""

from __future__ import annotations

import bz2
import io
import lzma
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "BOMB_MIN_OUTPUT",
    "RATIO_MIN_OUTPUT",
    "Decompressor",
    "Inflated",
    "Stream",
    "inflate",
    "new_decompressor",
    "supported",
]

_CHUNK = 256 * 1024
_STEP = 1024 * 1024
# Ratios are only judged once the output is this big: a small, highly compressible member
# (zeros, repeated config text) is normal and cheap. joblib.dump(compress="xz"/"bz2") of a
# 16 MiB zero-initialised array is ~3 KiB (a ratio of thousands), so the threshold sits above
# ordinary array sizes while the output it lets pile up stays small next to the member cap.
RATIO_MIN_OUTPUT = 32 * 1024 * 1024
# Data that is skipped rather than inspected (tensor bytes by their head, a tar walked as it
# decompresses) or that declares its size honestly is called a bomb only once it expands past
# this at more than the ratio: zero-filled tensors of ordinary sizes compress a thousandfold
# (np.savez_compressed of a 16 MiB zero array is ~16 KiB), and a bomb's harm is its size.
BOMB_MIN_OUTPUT = 256 * 1024 * 1024


class Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def needs_input(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def step(self, data: bytes, max_length: int) -> bytes: ...


class _Zlib:
    def __init__(self, wbits: int) -> None:
        self._d = zlib.decompressobj(wbits)
        self._tail = b""
        self._full = False  # the last step filled max_length: zlib may hold more output

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def needs_input(self) -> bool:
        return not self._tail and not self._full

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data

    def step(self, data: bytes, max_length: int) -> bytes:
        out = self._d.decompress(self._tail + data, max_length)
        self._tail = self._d.unconsumed_tail
        self._full = bool(max_length) and len(out) >= max_length and not self._d.eof
        return out


class _Std:
    """bz2 and lzma decompressors already have the needs_input / max_length interface."""

    def __init__(self, d: bz2.BZ2Decompressor | lzma.LZMADecompressor) -> None:
        self._d = d

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def needs_input(self) -> bool:
        return self._d.needs_input

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data

    def step(self, data: bytes, max_length: int) -> bytes:
        return self._d.decompress(data, max_length)


def _zip_lzma(props: bytes) -> Decompressor:
    # A zip LZMA member: 2-byte version, 2-byte properties size, then LZMA1 properties (lc/lp/pb
    # packed in one byte, 4-byte dictionary size), then the raw LZMA1 stream.
    if len(props) < 9:
        raise ValueError("truncated LZMA properties")
    d = props[4]
    if d >= 9 * 5 * 5:
        raise ValueError("invalid LZMA properties")
    lc, d = d % 9, d // 9
    lp, pb = d % 5, d // 5
    dict_size = int.from_bytes(props[5:9], "little")
    filt = {"id": lzma.FILTER_LZMA1, "dict_size": dict_size, "lc": lc, "lp": lp, "pb": pb}
    return _Std(lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[filt]))


def supported(kind: str) -> bool:
    return kind in ("deflate", "zlib", "gzip", "bzip2", "xz", "zip-lzma")


def new_decompressor(kind: str, props: bytes = b"") -> Decompressor:
    """A decompressor for ``kind``: deflate (raw), zlib, gzip, bzip2, xz, zip-lzma."""
    if kind == "deflate":
        return _Zlib(-15)
    if kind == "zlib":
        return _Zlib(15)
    if kind == "gzip":
        return _Zlib(31)
    if kind == "bzip2":
        return _Std(bz2.BZ2Decompressor())
    if kind == "xz":
        return _Std(lzma.LZMADecompressor(lzma.FORMAT_AUTO))
    if kind == "zip-lzma":
        return _zip_lzma(props)
    raise ValueError(f"unsupported compression {kind}")


@dataclass(frozen=True, slots=True)
class Inflated:
    """What came out of a bounded decompression.

    ``limit`` is None, ``"size"`` (the output cap was reached) or ``"ratio"`` (output grew more than
    ``max_ratio`` times the input). ``complete`` says the stream ended cleanly. ``trailing`` holds
    up to 64 bytes found after the end of the (last) stream.
    """

    data: bytes
    complete: bool
    limit: str | None
    consumed: int
    streams: int
    trailing: bytes


def inflate(
    read: Callable[[int], bytes],
    factory: Callable[[], Decompressor],
    *,
    cap: int,
    max_ratio: int = 0,
    magic: bytes = b"",
) -> Inflated:
    """Decompress what ``read`` yields, up to ``cap`` bytes of output.

    With ``magic``, a stream followed by another stream starting with it (concatenated gzip members,
    xz or bzip2 streams, which the standard readers all read through) is decompressed on.
    Raises the decompressor's error (zlib.error, OSError, lzma.LZMAError, ValueError) on corrupt
    input.
    """
    out = bytearray()
    dec = factory()
    buf = b""
    consumed = 0
    streams = 1
    while True:
        if dec.needs_input:
            if not buf:
                buf = read(_CHUNK)
                consumed += len(buf)
                if not buf:
                    return Inflated(bytes(out), False, None, consumed, streams, b"")
            data, buf = buf, b""
        else:
            data = b""
        # Small steps, so that the ratio is judged before a bomb's output piles up.
        out += dec.step(data, min(cap - len(out) + 1, _STEP))
        if len(out) > cap:
            return Inflated(bytes(out[:cap]), False, "size", consumed, streams, b"")
        if max_ratio and len(out) > RATIO_MIN_OUTPUT and len(out) > max_ratio * max(consumed, 1):
            return Inflated(bytes(out), False, "ratio", consumed, streams, b"")
        if dec.eof:
            rest = dec.unused_data + buf
            if magic and len(rest) < len(magic):
                more = read(_CHUNK)
                consumed += len(more)
                rest += more
            if magic and rest.startswith(magic):
                dec = factory()
                buf = rest
                streams += 1
                continue
            if len(rest) < 64:
                more = read(64 - len(rest))
                consumed += len(more)
                rest += more
            return Inflated(bytes(out), True, None, consumed, streams, rest[:64])


class Stream(io.RawIOBase):
    """Decompressed bytes as a forward-only file, produced on demand (a ``.tar.gz`` is walked
    without holding the tar in memory). Stops at ``cap`` bytes (``limited`` is then set), and
    with ``max_ratio`` once the output is past :data:`BOMB_MIN_OUTPUT` and has outgrown the input
    by more than that (``bomb`` is then set: the reader sees the end of the data). Follows
    concatenated streams that start with ``magic``. Decompression errors propagate."""

    def __init__(
        self,
        read: Callable[[int], bytes],
        factory: Callable[[], Decompressor],
        *,
        cap: int,
        magic: bytes = b"",
        max_ratio: int = 0,
    ) -> None:
        super().__init__()
        self._max_ratio = max_ratio
        self.bomb = False
        self.consumed = 0  # compressed bytes read so far
        self._read = read
        self._factory = factory
        self._dec = factory()
        self._buf = b""
        self._cap = cap
        self._magic = magic
        self.produced = 0
        self.limited = False
        self.ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        want = min(len(b), self._cap - self.produced, _STEP)
        if self.bomb:
            return 0
        if (
            self._max_ratio
            and self.produced > BOMB_MIN_OUTPUT
            and self.produced > self._max_ratio * max(self.consumed, 1)
        ):
            self.bomb = True
            return 0
        if want <= 0:
            self.limited = self.limited or not self.ended
            return 0
        while not self.ended:
            if self._dec.eof:
                rest = self._dec.unused_data + self._buf
                if self._magic and len(rest) < len(self._magic):
                    rest += self._read(_CHUNK)
                if self._magic and rest.startswith(self._magic):
                    self._dec, self._buf = self._factory(), rest
                    continue
                self.ended = True
                break
            if self._dec.needs_input:
                if not self._buf:
                    self._buf = self._read(_CHUNK)
                    self.consumed += len(self._buf)
                    if not self._buf:
                        raise EOFError("compressed stream ends before its end marker")
                data, self._buf = self._buf, b""
            else:
                data = b""
            out = self._dec.step(data, want)
            if out:
                b[: len(out)] = out
                self.produced += len(out)
                return len(out)
        return 0
