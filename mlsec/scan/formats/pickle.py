"""Format.PICKLE: a raw pickle file of any name (``.pkl``, ``.pt`` legacy, ``.joblib``, ``.bin``…),
or a pickle member handed back by a container analyzer (PyTorch-zip ``data.pkl``, decompressed
joblib). Every stream is analysed; the file is memory-mapped so array bytes are never read."""

from __future__ import annotations

import mmap
from collections.abc import Iterator

from mlsec.formats import PREFIX_SIZE, is_pickle_prefix
from mlsec.scan.base import Blob, ScanContext
from mlsec.scan.model import Finding, Severity
from mlsec.scan.pickle.driver import analyze_pickle
from mlsec.scan.pickle.vm import run_stream

__all__ = ["analyze", "analyze_probe"]


def analyze(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """Analyse a pickle blob statically (never unpickles)."""
    # Zero-copy (memory-mapped) bytes; findings are materialised before the map closes.
    with blob.view() as mv:
        found = list(analyze_pickle(mv, ctx))
    yield from found


def analyze_probe(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """Format.UNKNOWN / TEXT: bytes that do not look like a pickle may still load as one.

    ``pickle.loads`` needs no PROTO header (a stream may start with any opcode, SHORT_BINUNICODE…)
    and runs every opcode before the one that fails. The bytes are run on the VM from offset 0:
    a stream that reaches STOP is a pickle and analysed as such; one that breaks is reported only
    when what ran before the break is critical. Random and text data fail within a few opcodes.
    """
    with blob.view() as mv:
        found = list(_probe(mv, ctx))
    yield from found


def _probe(data: bytes | mmap.mmap | memoryview, ctx: ScanContext) -> Iterator[Finding]:
    res = run_stream(data, 0, len(data), allow_globals=ctx.options.allow_globals, max_ops=100_000)
    # A stream that runs nothing and is followed by prose ("Mrs. Smith": BININT2, STOP) is text;
    # the sniffer's rule decides, so that sniffing and probing agree.
    if (
        res.complete
        and res.ops >= 2
        and (res.globals or is_pickle_prefix(bytes(data[:PREFIX_SIZE])))
    ):
        yield ctx.finding(
            "PICKLE-DISGUISED",
            Severity.HIGH,
            f"loads as a pickle although its bytes look like {ctx.format.value} "
            "(a pickle needs no header)",
            why="Scanners that pick formats by header or extension skip such files.",
        )
        yield from analyze_pickle(data, ctx)
        return
    crit = [f for f in res.findings if f.severity is Severity.CRITICAL]
    for f in crit:
        yield ctx.finding(
            f.rule,
            f.severity,
            f"{f.message} (pickle.load runs this before failing on the rest of the bytes)",
            why=f.why,
            symbol=f.symbol,
            offset=f.offset,
        )
