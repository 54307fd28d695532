"""The analyzer interface: what one format's analyzer receives and how it reports.

An analyzer is a function ``analyze(blob, ctx) -> Iterable[Finding]``. ``blob`` is the bytes to look
at (a file of the artifact, or a member extracted from a container); ``ctx`` carries the limits,
the options, where we are (file, member path, depth), and ``ctx.scan_nested`` to hand a member of a
container back to the dispatcher, which detects its format from content and picks its analyzer.
Analyzers never execute, import or unpickle anything; they parse bytes with bounded work.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from mlsec.formats import Format
from mlsec.scan.model import Finding, Severity

__all__ = ["Analyzer", "Blob", "Limits", "ScanContext", "ScanOptions"]


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


class Blob:
    """Bytes to analyse: a file on disk (read lazily, never loaded whole) or an in-memory member."""

    __slots__ = ("_data", "_path", "name", "size")

    def __init__(
        self, name: str, *, path: Path | None = None, data: bytes | None = None, size: int = -1
    ) -> None:
        if (path is None) == (data is None):
            raise ValueError("a Blob has either a path or data")
        self.name = name
        self._path = path
        self._data = data
        if data is not None:
            self.size = len(data)
        else:
            assert path is not None
            self.size = size if size >= 0 else path.stat().st_size

    @property
    def path(self) -> Path | None:
        """The file on disk, when the blob is one (lets zip/tar readers seek instead of copying)."""
        return self._path

    def open(self) -> BinaryIO:
        if self._data is not None:
            return io.BytesIO(self._data)
        assert self._path is not None
        return open(self._path, "rb")  # the caller closes it

    def head(self, n: int) -> bytes:
        if self._data is not None:
            return self._data[:n]
        with self.open() as f:
            return f.read(n)

    def read(self) -> bytes:
        """All bytes. Only for small blobs (members already bounded by the limits)."""
        if self._data is not None:
            return self._data
        with self.open() as f:
            return f.read()


@dataclass
class ScanContext:
    """Where an analyzer is and what it may do. One per artifact file; nested scans share it."""

    file: str
    options: ScanOptions
    format: Format
    member: str | None = None
    depth: int = 0
    globals_seen: set[str] = field(default_factory=set)
    members_scanned: int = 0
    extracted_bytes: int = 0
    dispatch: Callable[[Blob, ScanContext], Iterable[Finding]] | None = None

    @property
    def limits(self) -> Limits:
        return self.options.limits

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
        )
        return sub

    def scan_nested(self, blob: Blob, member: str) -> list[Finding]:
        """Detect ``blob``'s format from its bytes and run its analyzer (bounded by max_depth)."""
        self.members_scanned += 1
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
        from mlsec.formats import sniff_bytes

        fmt = sniff_bytes(blob.head(64 * 1024), name=member)
        if fmt is Format.ZIP:
            from mlsec.scan.engine import refine_zip

            fmt = refine_zip(blob)
        return list(self.dispatch(blob, self.child(member, fmt)))


Analyzer = Callable[[Blob, ScanContext], Iterable[Finding]]
