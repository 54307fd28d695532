"""Handing container members back to the dispatcher without reading what cannot matter.

A multi-gigabyte checkpoint is mostly tensor storage. Its members are looked at through a small
head; only a member whose bytes sniff as a format with an analyzer (a pickle, a nested archive, a
NumPy array, …) is handed on, as a window of the file when it is stored uncompressed.
"""

from __future__ import annotations

import io
import pickletools
import warnings
from collections.abc import Iterable, Iterator

from mlsec.formats import PICKLE_FIRST, PREFIX_SIZE, Format, sniff_bytes
from mlsec.scan.base import ScanContext
from mlsec.scan.formats._inflate import Inflated
from mlsec.scan.model import Finding, Severity
from mlsec.scan.registry import analyzer_for

__all__ = [
    "HEAD_SIZE",
    "FindingCap",
    "budget_exhausted",
    "limit_rule",
    "member_limit",
    "needs_prefix",
    "sniff_member",
    "unsafe_path",
    "worth_dispatching",
]

# Bytes of a member read with its header: enough for every magic number, tar's "ustar" at 257,
# and a safetensors header length.
HEAD_SIZE = 512

_JSON_FIRST = frozenset(b"{ \t\r\n")


def needs_prefix(head: bytes) -> bool:
    """True when ``head`` could start a protocol 0/1 pickle or a JSON document, which take a
    longer prefix to tell (JSON is only called JSON when the prefix parses or fills 64 KiB)."""
    if not head:
        return False
    first = head[0]
    return first in PICKLE_FIRST or (first in _JSON_FIRST and head.lstrip()[:1] == b"{")


def sniff_member(prefix: bytes, name: str) -> Format:
    """The format of a member from its first bytes (up to :data:`PREFIX_SIZE`)."""
    return sniff_bytes(prefix[:PREFIX_SIZE], name=name)


def worth_dispatching(
    fmt: Format, name: str = "", prefix: bytes | None = None, *, whole: bool = False
) -> bool:
    """Whether some analyzer looks at ``fmt`` (a format without one carries nothing to inspect).

    Plain text only matters as a Jinja chat template (``*.jinja``) or a text-format graph, and
    unknown bytes and other text only when they would load as a pickle. A
    "pickle" recognised only by its two PROTO bytes must also parse for a few opcodes (given
    ``prefix``): random binary members start with 0x80 0x0N once in 11,000, and a stream that
    breaks within four opcodes cannot call anything. ``whole`` says ``prefix`` is the entire
    member (then running off its end is a failure, not a cut).
    """
    if fmt in (Format.UNKNOWN, Format.TEXT) and not (
        fmt is Format.TEXT and name.lower().endswith((".jinja", ".pbtxt"))
    ):
        # Unknown bytes and plain text only matter if they would load as a pickle (one needs no
        # header); decompressing every such member to find out would read all the tensor data.
        from mlsec.scan.pickle.driver import looks_like_pickle

        return prefix is not None and looks_like_pickle(prefix)
    if (
        fmt is Format.PICKLE
        and prefix is not None
        and prefix[:1] == b"\x80"
        and not _opcodes_parse(prefix, 4, whole)
    ):
        return False
    return analyzer_for(fmt) is not None


def _opcodes_parse(prefix: bytes, n: int, whole: bool) -> bool:
    """The first ``n`` opcodes parse (or a STOP comes first). Running off the end of the prefix
    counts as parsing: a long argument is not evidence against a pickle."""
    count = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            for opcode, _arg, _pos in pickletools.genops(io.BytesIO(prefix)):
                count += 1
                if opcode.name == "STOP" or count >= n:
                    return True
        except ValueError as exc:
            message = str(exc)  # pickletools' wording for an argument cut by the prefix end
            return not whole and ("remain" in message or "no newline found" in message)
        except Exception:  # any other malformation: not a pickle
            return False
    return not whole  # the prefix ended between opcodes


def unsafe_path(name: str) -> str | None:
    """Why an archive member name could escape an extraction directory, or None if it cannot.

    Checked on both separators: Windows extractors (and some Python code) treat ``\\`` as one.
    """
    if "\x00" in name:
        return "contains a NUL byte"
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        return "is an absolute path"
    if ".." in parts:
        return "climbs out of the archive root with '..'"
    return None


def member_limit(ctx: ScanContext) -> Iterator[Finding]:
    """The file-wide member limit was hit (reported once per artifact file)."""
    if "members" not in ctx.counters.once:
        ctx.counters.once.add("members")
        yield ctx.finding(
            "MEMBER-LIMIT",
            Severity.HIGH,
            f"more than {ctx.limits.max_members} archive members in this file (all nesting "
            "levels); the rest were not inspected",
            why="Nested archive bombs (42.zip) multiply members level by level; what was not "
            "inspected may hide a payload.",
        )


def budget_exhausted(ctx: ScanContext) -> Iterator[Finding]:
    """The file-wide extraction budget is spent (reported once per artifact file)."""
    if "extract" not in ctx.counters.once:
        ctx.counters.once.add("extract")
        yield ctx.finding(
            "EXTRACT-LIMIT",
            Severity.HIGH,
            f"more than {ctx.limits.max_total_extracted} bytes decompressed for this file; "
            "further members were not inspected",
            why="Decompression bombs exhaust memory and time; what was not inspected may hide a "
            "payload.",
        )


def limit_rule(
    bomb: str, limit: str, produced: int, consumed: int, cap: int, ctx: ScanContext
) -> str:
    """The rule for a decompression stopped by a limit: ``bomb`` when the output outgrew the
    input by more than ``max_ratio``, EXTRACT-LIMIT when the file-wide budget was what stopped it,
    DECOMPRESSION-LIMIT for a member that is merely larger than ``max_member_size``."""
    if limit == "ratio" or produced > ctx.limits.max_ratio * max(consumed, 1):
        return bomb
    if cap < ctx.limits.max_member_size:
        return "EXTRACT-LIMIT"
    return "DECOMPRESSION-LIMIT"


def limit_finding(bomb: str, subject: str, out: Inflated, cap: int, ctx: ScanContext) -> Finding:
    """The finding for a decompression that a limit stopped (see :func:`limit_rule`)."""
    assert out.limit is not None
    what = (
        f"more than {cap} bytes"
        if out.limit == "size"
        else f"more than {ctx.limits.max_ratio}x its compressed size"
    )
    return ctx.finding(
        limit_rule(bomb, out.limit, len(out.data), out.consumed, cap, ctx),
        Severity.HIGH,
        f"{subject} decompresses to {what}; only the first {len(out.data)} bytes were inspected",
        why="Decompression bombs exhaust memory and disk; the part not inspected may hide "
        "a payload.",
    )


class FindingCap:
    """At most ``limit`` findings per rule from one container, then one summary: a hostile
    archive with 200,000 '../' names should not produce 200,000 findings."""

    def __init__(self, ctx: ScanContext, limit: int = 50) -> None:
        self._ctx = ctx
        self._limit = limit
        self._counts: dict[str, int] = {}
        self._severity: dict[str, Severity] = {}

    def __call__(self, findings: Iterable[Finding]) -> Iterator[Finding]:
        for f in findings:
            n = self._counts.get(f.rule, 0) + 1
            self._counts[f.rule] = n
            self._severity[f.rule] = f.severity
            if n <= self._limit:
                yield f

    def summary(self) -> Iterator[Finding]:
        for rule, n in sorted(self._counts.items()):
            if n > self._limit:
                yield self._ctx.finding(
                    rule,
                    self._severity[rule],
                    f"{n - self._limit} more {rule} findings in this archive (not listed)",
                    why="Repeated findings are summarised to keep the report readable.",
                )
