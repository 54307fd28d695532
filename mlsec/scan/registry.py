"""The one table from format to analyzer. Adding a format means adding one line here.

Entries name ``module:function`` so analyzers import lazily: scanning a directory of safetensors
files never imports the pickle VM, and ``mlsec --help`` imports none of them.
"""

from __future__ import annotations

import importlib

from mlsec.formats import Format
from mlsec.scan.base import Analyzer

__all__ = ["ANALYZERS", "analyzer_for"]

ANALYZERS: dict[Format, str] = {
    # Filled in by the format modules under mlsec/scan/formats/, one line each.
    Format.PICKLE: "mlsec.scan.formats.pickle:analyze",
    Format.NUMPY: "mlsec.scan.formats.numpy:analyze",
    # Bytes that do not look like a pickle may still load as one (no header needed). The TEXT
    # analyzer should also call analyze_probe (a truncated protocol-0 payload sniffs as text).
    Format.UNKNOWN: "mlsec.scan.formats.pickle:analyze_probe",
}

_cache: dict[Format, Analyzer | None] = {}


def analyzer_for(fmt: Format) -> Analyzer | None:
    """The analyzer for ``fmt``, or None when the format carries no executable content."""
    if fmt in _cache:
        return _cache[fmt]
    target = ANALYZERS.get(fmt)
    fn: Analyzer | None = None
    if target is not None:
        module, _, attr = target.partition(":")
        fn = getattr(importlib.import_module(module), attr)
    _cache[fmt] = fn
    return fn
