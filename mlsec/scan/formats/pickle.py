"""Format.PICKLE: a raw pickle file of any name (``.pkl``, ``.pt`` legacy, ``.joblib``, ``.bin``…),
or a pickle member handed back by a container analyzer (PyTorch-zip ``data.pkl``, decompressed
joblib). Every stream is analysed; the file is memory-mapped so array bytes are never read."""

from __future__ import annotations

import mmap
from collections.abc import Iterator

from mlsec.scan.base import Blob, ScanContext
from mlsec.scan.model import Finding
from mlsec.scan.pickle.driver import analyze_pickle

__all__ = ["analyze"]


def analyze(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """Analyse a pickle blob statically (never unpickles)."""
    if blob.path is None or blob.size == 0:
        yield from analyze_pickle(blob.read(), ctx)
        return
    with open(blob.path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        # Materialise findings before the map closes (values referencing it are dropped here).
        found = list(analyze_pickle(mm, ctx))
    yield from found
