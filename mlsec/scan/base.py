"""The analyzer interface: what one format's analyzer receives and how it reports.

An analyzer is a function ``analyze(blob, ctx) -> Iterable[Finding]``. ``blob`` is the bytes to look
at (a file of the artifact, or a member extracted from a container); ``ctx`` carries the limits,
the options, where we are (file, member path, depth), and ``ctx.scan_nested`` to hand a member of a
container back to the dispatcher, which detects its format from content and picks its analyzer.
Analyzers never execute, import or unpickle anything; they parse bytes with bounded work.
"""

from __future__ import annotations

import contextlib
import io
import mmap
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from mlsec.formats import Format
from mlsec.scan.model import Finding, Severity

__all__ = ["Analyzer", "Blob", "Counters", "Limits", "ScanContext", "ScanOptions"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on work done for hostile input. A limit hit is a finding, never a hang or an OOM."""

    max_depth: int = 6  # containers inside containers
    max_members: int = 200_000  # members of one container
    max_member_size: int = 512 * 1024 * 1024  # bytes extracted from one compressed member
    max_total_extracted: int = 2 * 1024 * 1024 * 1024  # bytes extracted for one artifact file
    max_ratio: int = 250  # uncompressed / compressed size of one member
    max_pickle_ops: int = 20_000_000  # opcodes in one pickle stream
    max_pickle_streams: int = 64  # pickle streams in one file


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """What the caller can tune: extra allowed globals (``module.name``), limits, engines."""

    allow_globals: frozenset[str] = frozenset()
    limits: Limits = field(default_factory=Limits)


class _Window(io.RawIOBase):
    """A read-only, seekable view of ``size`` bytes at ``offset`` of a file (a stored archive
    member handed to another analyzer without copying it)."""

    def __init__(self, path: Path, offset: int, size: int) -> None:
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._start = offset
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def readinto(self, buf: Any) -> int:
        n = max(0, min(len(buf), self._size - self._pos))
        if n == 0:
            return 0
        self._f.seek(self._start + self._pos)
        data = self._f.read(n)
        buf[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        self._f.close()
        super().close()


class Blob:
    """Bytes to analyse: a file on disk (read lazily, never loaded whole) or an in-memory member.

    A path-backed blob may be a window of its file (``offset`` and ``size``): a stored member of
    an archive on disk is analysed in place.
    """

    __slots__ = ("_data", "_path", "name", "offset", "size")

    def __init__(
        self,
        name: str,
        *,
        path: Path | None = None,
        data: bytes | None = None,
        size: int = -1,
        offset: int = 0,
    ) -> None:
        if (path is None) == (data is None):
            raise ValueError("a Blob has either a path or data")
        self.name = name
        self._path = path
        self._data = data
        self.offset = offset
        if data is not None:
            self.size = len(data)
        else:
            assert path is not None
            self.size = size if size >= 0 else path.stat().st_size - offset

    @property
    def path(self) -> Path | None:
        """The whole file on disk, when the blob is one (lets zip/tar readers seek instead of
        copying). None for in-memory blobs and for windows of a file (use :meth:`open`)."""
        return self._path if self.offset == 0 else None

    def open(self) -> BinaryIO:
        """A seekable binary stream of the blob's bytes (the caller closes it)."""
        if self._data is not None:
            return io.BytesIO(self._data)
        assert self._path is not None
        if self.offset == 0 and self.size == self._path.stat().st_size:
            return open(self._path, "rb")
        return io.BufferedReader(_Window(self._path, self.offset, self.size))

    @contextlib.contextmanager
    def view(self) -> Iterator[memoryview]:
        """The blob's bytes as a read-only memoryview, memory-mapped when on disk (so parsers can
        index a multi-gigabyte file without reading the parts they skip). Do not keep slices
        of it beyond the ``with`` block."""
        if self._data is not None:
            yield memoryview(self._data)
            return
        assert self._path is not None
        if self.size == 0:
            yield memoryview(b"")
            return
        with open(self._path, "rb") as f:
            m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            whole = memoryview(m)
            part = whole[self.offset : self.offset + self.size]
            try:
                yield part
            finally:
                part.release()
                whole.release()
                with contextlib.suppress(BufferError):  # a slice kept by a caller: GC closes it
                    m.close()

    def window(self, name: str, offset: int, size: int) -> Blob:
        """The ``size`` bytes at ``offset`` of this blob, without copying when it is on disk."""
        size = max(0, min(size, self.size - offset))
        if self._data is not None:
            return Blob(name, data=self._data[offset : offset + size])
        assert self._path is not None
        return Blob(name, path=self._path, offset=self.offset + offset, size=size)

    def head(self, n: int) -> bytes:
        if self._data is not None:
            return self._data[:n]
        with self.open() as f:
            return f.read(min(n, self.size))

    def read(self) -> bytes:
        """All bytes. Only for small blobs (members already bounded by the limits)."""
        if self._data is not None:
            return self._data
        with self.open() as f:
            return f.read(self.size)


@dataclass
class Counters:
    """Work done for one artifact file, shared by every nested context."""

    members_scanned: int = 0
    extracted_bytes: int = 0
    members_seen: int = 0  # container members looked at, at every nesting level
    once: set[str] = field(default_factory=set)  # file-wide limits already reported


@dataclass
class ScanContext:
    """Where an analyzer is and what it may do. One per artifact file; nested scans share it."""

    file: str
    options: ScanOptions
    format: Format
    member: str | None = None
    depth: int = 0
    globals_seen: set[str] = field(default_factory=set)
    dispatch: Callable[[Blob, ScanContext], Iterable[Finding]] | None = None
    counters: Counters = field(default_factory=Counters)

    @property
    def limits(self) -> Limits:
        return self.options.limits

    @property
    def members_scanned(self) -> int:
        """Members handed to :meth:`scan_nested`, over the whole artifact file."""
        return self.counters.members_scanned

    @property
    def extracted_bytes(self) -> int:
        """Bytes decompressed or extracted so far, over the whole artifact file."""
        return self.counters.extracted_bytes

    def extract_budget(self) -> int:
        """How many more bytes may be extracted for this file (``max_total_extracted``)."""
        return max(0, self.limits.max_total_extracted - self.counters.extracted_bytes)

    def charge_extracted(self, n: int) -> None:
        """Count ``n`` bytes decompressed or copied out of a container."""
        self.counters.extracted_bytes += n

    def see_member(self) -> bool:
        """Count one container member looked at; False once the file's members, over every
        nesting level, exceed ``max_members`` (nested bombs such as 42.zip)."""
        self.counters.members_seen += 1
        return self.counters.members_seen <= self.limits.max_members

    def finding(
        self,
        rule: str,
        severity: Severity,
        message: str,
        *,
        why: str = "",
        symbol: str | None = None,
        offset: int | None = None,
    ) -> Finding:
        """A finding located at this context's file / member / format."""
        return Finding(
            rule=rule,
            severity=severity,
            file=self.file,
            member=self.member,
            format=self.format.value,
            message=message,
            why=why,
            symbol=symbol,
            offset=offset,
        )

    def child(self, member: str, fmt: Format) -> ScanContext:
        """The context for a member of the current container (depth + 1, shared counters)."""
        sub = ScanContext(
            file=self.file,
            options=self.options,
            format=fmt,
            member=f"{self.member}!{member}" if self.member else member,
            depth=self.depth + 1,
            globals_seen=self.globals_seen,
            dispatch=self.dispatch,
            counters=self.counters,
        )
        return sub

    def scan_nested(self, blob: Blob, member: str) -> list[Finding]:
        """Detect ``blob``'s format from its bytes and run its analyzer (bounded by max_depth)."""
        self.counters.members_scanned += 1
        if self.depth + 1 > self.limits.max_depth:
            return [
                self.finding(
                    "CONTAINER-DEPTH",
                    Severity.HIGH,
                    f"{member}: containers nested deeper than {self.limits.max_depth} levels",
                    why="Deep nesting is a classic way to exhaust scanners and hide a payload.",
                )
            ]
        assert self.dispatch is not None
        from mlsec.formats import PREFIX_SIZE, sniff_file

        with blob.open() as f:
            fmt = sniff_file(f, f.read(PREFIX_SIZE), name=member)
        return list(self.dispatch(blob, self.child(member, fmt)))


Analyzer = Callable[[Blob, ScanContext], Iterable[Finding]]
