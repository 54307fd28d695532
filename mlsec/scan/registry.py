"""The one table from format to analyzer(s). Adding a format means adding one line here.

Entries name ``module:function`` so analyzers import lazily: scanning a directory of safetensors
files never imports the pickle VM, and ``mlsec --help`` imports none of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

from mlsec.formats import Format
from mlsec.scan.base import Analyzer, Blob, ScanContext
from mlsec.scan.model import Finding

__all__ = ["ANALYZERS", "analyzer_for"]

ANALYZERS: dict[Format, str | tuple[str, ...]] = {
    # Filled in by the format modules under mlsec/scan/formats/, one line each.
    # a .py file can sniff as a protocol-0 pickle ("c" then a newline): its AST is judged too
    Format.PICKLE: (
        "mlsec.scan.formats.remotecode:analyze_python",
        "mlsec.scan.formats.pickle:analyze",
    ),
    Format.NUMPY: "mlsec.scan.formats.numpy:analyze",
    Format.ZIP: "mlsec.scan.formats.zip:analyze_zip",
    Format.PYTORCH_ZIP: "mlsec.scan.formats.zip:analyze_zip",
    Format.NPZ: "mlsec.scan.formats.zip:analyze_zip",
    Format.GZIP: "mlsec.scan.formats.compressed:analyze_compressed",
    Format.ZLIB: "mlsec.scan.formats.compressed:analyze_compressed",
    Format.BZIP2: "mlsec.scan.formats.compressed:analyze_compressed",
    Format.XZ: "mlsec.scan.formats.compressed:analyze_compressed",
    Format.ZSTD: "mlsec.scan.formats.compressed:analyze_uninspectable",
    Format.LZ4: "mlsec.scan.formats.compressed:analyze_uninspectable",
    Format.AGE: "mlsec.scan.formats.compressed:analyze_encrypted",
    Format.SAFETENSORS: "mlsec.scan.formats.safetensors:analyze_safetensors",
    Format.ONNX: "mlsec.scan.formats.onnx:analyze_onnx",
    Format.KERAS_ZIP: "mlsec.scan.formats.keras:analyze_keras_zip",
    Format.HDF5: "mlsec.scan.formats.hdf5:analyze_hdf5",
    Format.GGUF: "mlsec.scan.formats.gguf:analyze_gguf",
    Format.TAR: "mlsec.scan.formats.tar:analyze_tar",
    Format.TF_SAVEDMODEL: "mlsec.scan.formats.savedmodel:analyze_savedmodel",
    Format.PROTOBUF: "mlsec.scan.formats.savedmodel:analyze_protobuf",
    Format.SEVEN_ZIP: "mlsec.scan.formats.sevenzip:analyze_7z",
    Format.JSON: "mlsec.scan.formats.jsonconfig:analyze_json",
    Format.YAML: "mlsec.scan.formats.hydra:analyze_yaml",
    # A truncated protocol-0 payload sniffs as text, and pickle.load still runs it: text and
    # unknown bytes also go through the pickle probe (a pickle needs no header).
    # Python files of a model repository are remote code (trust_remote_code), judged by AST.
    Format.TEXT: (
        "mlsec.scan.formats.jsonconfig:analyze_text",
        "mlsec.scan.formats.remotecode:analyze_python",
        "mlsec.scan.formats.pickle:analyze_probe",
    ),
    Format.UNKNOWN: (
        "mlsec.scan.formats.remotecode:analyze_python",
        "mlsec.scan.formats.pickle:analyze_probe",
    ),
}

_cache: dict[Format, Analyzer | None] = {}


def analyzer_for(fmt: Format) -> Analyzer | None:
    """The analyzer for ``fmt`` (several run in order), or None when the format carries no
    executable content."""
    if fmt in _cache:
        return _cache[fmt]
    target = ANALYZERS.get(fmt)
    targets = (target,) if isinstance(target, str) else (target or ())
    fns: list[Analyzer] = []
    for t in targets:
        module, _, attr = t.partition(":")
        fns.append(getattr(importlib.import_module(module), attr))
    fn: Analyzer | None = None
    if len(fns) == 1:
        fn = fns[0]
    elif fns:
        fn = _chain(tuple(fns))
    _cache[fmt] = fn
    return fn


def _chain(fns: tuple[Analyzer, ...]) -> Analyzer:
    def run_all(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
        for fn in fns:
            yield from fn(blob, ctx)

    return run_all
