"""ASCII armor: strict PEM (RFC 7468) with the label "AGE ENCRYPTED FILE", padded base64 wrapped
at 64 columns. The reader rejects anything but whitespace around the block, and non-canonical
base64, so an armored file is no more malleable than a binary one."""

from __future__ import annotations

import binascii
import io
from typing import BinaryIO

from mlsec.errors import CryptError

__all__ = ["BEGIN", "END", "ArmorReader", "ArmorWriter"]

BEGIN = b"-----BEGIN AGE ENCRYPTED FILE-----"
END = b"-----END AGE ENCRYPTED FILE-----"
_LINE = 64
_RAW_PER_LINE = 48
_MAX_WHITESPACE = 1024


class ArmorWriter:
    """A write-only stream that armors what it is given into ``dst``; ``close()`` writes the
    footer (and does not close ``dst``)."""

    def __init__(self, dst: BinaryIO) -> None:
        self._dst = dst
        self._pending = bytearray()
        dst.write(BEGIN + b"\n")

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._pending += data
        whole = len(self._pending) - len(self._pending) % _RAW_PER_LINE
        if whole >= 64 * _RAW_PER_LINE:
            self._emit(self._pending[:whole])
            del self._pending[:whole]
        return len(data)

    def _emit(self, raw: bytes | bytearray) -> None:
        text = binascii.b2a_base64(raw, newline=False)
        self._dst.write(b"".join(text[i : i + _LINE] + b"\n" for i in range(0, len(text), _LINE)))

    def close(self) -> None:
        if self._pending:
            self._emit(self._pending)
            self._pending.clear()
        self._dst.write(END + b"\n")


class ArmorReader(io.RawIOBase):
    """Decodes an armored age file from ``src``, strictly. Raises CryptError on malformed armor."""

    def __init__(self, src: BinaryIO) -> None:
        super().__init__()
        self._src = src
        self._buf = b""
        self._done = False
        self._started = False
        self._any = False

    def readable(self) -> bool:
        return True

    def _line(self) -> bytes:
        raw = self._src.readline(_LINE + 3)
        if not raw:
            raise CryptError("truncated armor: no END line")
        if raw.endswith(b"\r\n"):
            return raw[:-2]
        if raw.endswith(b"\n"):
            return raw[:-1]
        if len(raw) > _LINE + 1:
            raise CryptError("malformed armor: line longer than 64 columns")
        return raw  # the END line may lack a newline at EOF; checked by the caller

    def _start(self) -> None:
        self._started = True
        skipped = 0
        while True:
            line = self._line()
            if line.strip():
                break
            skipped += len(line) + 1
            if skipped > _MAX_WHITESPACE:
                raise CryptError("malformed armor: too much leading whitespace")
        if line.lstrip() != BEGIN:
            raise CryptError("malformed armor: bad BEGIN line")

    def _finish(self) -> None:
        self._done = True
        rest = self._src.read(_MAX_WHITESPACE + 1)
        if len(rest) > _MAX_WHITESPACE or rest.strip():
            raise CryptError("malformed armor: trailing data after the END line")

    def _next_line(self) -> bytes:
        if not self._started:
            self._start()
        line = self._line()
        if line == END:
            if not self._any:
                raise CryptError("malformed armor: empty body")
            self._finish()
            return b""
        self._any = True
        if len(line) > _LINE:
            raise CryptError("malformed armor: line longer than 64 columns")
        try:
            data = binascii.a2b_base64(line, strict_mode=True)
        except binascii.Error:
            raise CryptError("malformed armor: invalid base64") from None
        if len(line) < _LINE or line.endswith(b"="):
            # The last line: padding and trailing bits must be canonical, then END.
            if not line or binascii.b2a_base64(data, newline=False) != line:
                raise CryptError("malformed armor: non-canonical base64")
            if self._line() != END:
                raise CryptError("malformed armor: bad END line")
            self._finish()
        return data

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        if not self._buf and not self._done:
            parts: list[bytes] = []
            total = 0
            while total < len(b) and not self._done:
                data = self._next_line()
                parts.append(data)
                total += len(data)
            self._buf = b"".join(parts)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n
