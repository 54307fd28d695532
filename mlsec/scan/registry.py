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
    Format.ZIP: "mlsec.scan.formats.zip:analyze_zip",
    Format.PYTORCH_ZIP: "mlsec.scan.formats.zip:analyze_zip",
    Format.NPZ: "mlsec.scan.formats.zip:analyze_zip",
    Format.GZIP: "mlsec.scan.formats.compressed:analyze_compressed",
    Format.ZLIB: "mlsec.scan.formats.compressed:analyze_compressed",
    Format.BZIP2: "mlsec.scan.formats.compressed:analyze_compressed",
    Format.XZ: "mlsec.scan.formats.compressed:analyze_compressed",
    Format.ZSTD: "mlsec.scan.formats.compressed:analyze_uninspectable",
    Format.LZ4: "mlsec.scan.formats.compressed:analyze_uninspectable",
    Format.SAFETENSORS: "mlsec.scan.formats.safetensors:analyze_safetensors",
    Format.ONNX: "mlsec.scan.formats.onnx:analyze_onnx",
    Format.KERAS_ZIP: "mlsec.scan.formats.keras:analyze_keras_zip",
    Format.HDF5: "mlsec.scan.formats.keras:analyze_hdf5",
    Format.GGUF: "mlsec.scan.formats.gguf:analyze_gguf",
    Format.TAR: "mlsec.scan.formats.tar:analyze_tar",
    Format.TF_SAVEDMODEL: "mlsec.scan.formats.savedmodel:analyze_savedmodel",
    Format.PROTOBUF: "mlsec.scan.formats.savedmodel:analyze_protobuf",
    Format.SEVEN_ZIP: "mlsec.scan.formats.sevenzip:analyze_7z",
    Format.JSON: "mlsec.scan.formats.jsonconfig:analyze_json",
    Format.TEXT: "mlsec.scan.formats.jsonconfig:analyze_text",
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
