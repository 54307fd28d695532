"""Every container / non-pickle format has exactly one registered analyzer that imports."""

from __future__ import annotations

import pytest

from mlsec.formats import Format
from mlsec.scan import registry

OWNED = [
    Format.ZIP,
    Format.PYTORCH_ZIP,
    Format.NPZ,
    Format.KERAS_ZIP,
    Format.TAR,
    Format.SEVEN_ZIP,
    Format.GZIP,
    Format.BZIP2,
    Format.XZ,
    Format.ZSTD,
    Format.LZ4,
    Format.ZLIB,
    Format.HDF5,
    Format.SAFETENSORS,
    Format.GGUF,
    Format.ONNX,
    Format.TF_SAVEDMODEL,
    Format.PROTOBUF,
    Format.JSON,
    Format.TEXT,
]


@pytest.mark.parametrize("fmt", OWNED, ids=str)
def test_analyzer_is_registered_and_imports(fmt: Format) -> None:
    registry._cache.pop(fmt, None)
    assert registry.ANALYZERS[fmt].startswith("mlsec.scan.formats.")
    assert callable(registry.analyzer_for(fmt))


def test_every_archive_format_has_an_analyzer() -> None:
    for fmt in Format:
        if fmt.is_archive:
            assert fmt in registry.ANALYZERS, fmt
