"""Every pickle stream of a buffer, one after the other, as findings of a scan context.

Data after a stream's STOP is another stream, not padding (a loader may call ``pickle.load`` again),
with two exceptions recognised by their content: legacy PyTorch files (``torch.save(...,
_use_new_zipfile_serialization=False)``: a magic-number pickle, four more pickles, then raw storage
bytes) and joblib's uncompressed format (raw array bytes after each ``NumpyArrayWrapper``, handled
inside the VM).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

from mlsec.scan.base import Blob, ScanContext
from mlsec.scan.model import Finding, Severity
from mlsec.scan.pickle.vm import run_stream

__all__ = ["LEGACY_TORCH_MAGIC", "analyze_pickle", "looks_like_pickle"]

LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_STREAMS = 5  # magic, protocol version, sys info, the object, the storage keys


def looks_like_pickle(data: Any, max_ops: int = 10_000) -> bool:
    """True when ``pickle.load`` on ``data`` would import something (a global) before it ends or
    breaks. For bytes a loader never unpickles (tensor storage): random data that merely parses as
    a few constants, or hits an EXT opcode byte, is not worth reporting (about 1.5% of random
    storages starting with 0x80 0x02 do).

    >>> looks_like_pickle(b"cos\\nsystem\\n.")
    True
    """
    res = run_stream(data, 0, len(data), max_ops=max_ops, joblib=False)
    return bool(res.globals) or any(f.severity is Severity.CRITICAL for f in res.findings)


def analyze_pickle(
    data: Any, ctx: ScanContext, *, start: int = 0, _alt: bool = False
) -> Iterator[Finding]:
    """Analyse every pickle stream in ``data`` (bytes, mmap or memoryview) from ``start``."""
    limits = ctx.limits
    size = len(data)
    pos = start
    streams = 0
    legacy = False
    while pos < size:
        if streams >= limits.max_pickle_streams:
            yield ctx.finding(
                "PICKLE-LIMIT",
                Severity.HIGH,
                f"more than {limits.max_pickle_streams} pickle streams; the rest was not analysed",
                why="Bounded work on hostile input: unanalysed streams could hide a payload.",
                offset=pos,
            )
            return
        res = run_stream(
            data,
            pos,
            size,
            allow_globals=ctx.options.allow_globals,
            max_ops=limits.max_pickle_ops,
        )
        ctx.globals_seen.update(res.globals)
        for f in res.findings:
            yield ctx.finding(
                f.rule, f.severity, f.message, why=f.why, symbol=f.symbol, offset=f.offset
            )
        clean: dict[str, int] = {}
        for offset, ref, loader in res.nested:
            payload = ref if isinstance(ref, bytes) else ref.read(data)
            if (yield from _nested(payload, offset, loader, ctx)):
                clean[loader] = clean.get(loader, 0) + 1
        for loader, n in clean.items():
            yield ctx.finding(
                "PICKLE-NESTED-LOADER",
                Severity.LOW,
                f"{loader} deserialises embedded bytes at load time ({n} call(s)); they were "
                "scanned and nothing was found in them",
                symbol=loader,
                offset=pos,
            )
        for alt in res.alt_ends if not _alt else ():
            # Another CPython reader starts the next stream elsewhere (STOP inside a frame, or a
            # stream a frame-buffering reader reads differently): analyse from there too.
            if alt < size:
                yield from analyze_pickle(data, ctx, start=alt, _alt=True)
        if not res.complete:
            if streams and not res.findings:
                # Bytes after the last stream that run nothing before they fail to parse: a second
                # pickle.load would raise without executing anything. Noted, not a failure.
                yield ctx.finding(
                    "PICKLE-TRAILING-DATA",
                    Severity.INFO,
                    f"{size - pos} bytes after the last pickle stream do not parse as a pickle "
                    f"({res.error}); nothing in them would run",
                    offset=pos,
                )
                return
            yield ctx.finding(
                "PICKLE-MALFORMED",
                Severity.HIGH,
                f"pickle stream cannot be parsed ({res.error}); findings above cover what came "
                "before the break",
                why="A loader runs every opcode before the break; a scanner that gives up on a "
                "broken stream misses them.",
                offset=pos,
            )
            return
        streams += 1
        if streams == 1 and type(res.result) is int and res.result == LEGACY_TORCH_MAGIC:
            legacy = True
        if legacy and streams == _LEGACY_STREAMS:
            return  # raw storage bytes follow
        pos = res.end


def _nested(
    payload: bytes, offset: int, loader: str, ctx: ScanContext
) -> Generator[Finding, None, bool]:
    """Bytes handed to a nested loader: scanned as what they are (a pickle without a header sniffs
    as unknown, whose analyzer probes it as a pickle); the call is high when they hold anything.
    Returns True when they were clean."""
    member = f"pickle@{offset}"
    found = ctx.scan_nested(Blob(member, data=payload), member)
    yield from found
    bad = [f for f in found if f.severity.at_least(Severity.MEDIUM)]
    if not bad:
        return True
    worst = max(bad, key=lambda f: f.severity.rank)
    yield ctx.finding(
        "PICKLE-NESTED-LOADER",
        Severity.HIGH,
        f"{loader} deserialises {len(payload)} embedded bytes at load time; they hold "
        f"{len(bad)} finding(s), the worst {worst.severity.value} ({worst.rule})",
        why="A loader called while unpickling runs a second deserialisation.",
        symbol=loader,
        offset=offset,
    )
    return False
