"""Every container / non-pickle format has registered analyzers that import."""

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
    Format.AGE,
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
    target = registry.ANALYZERS[fmt]
    targets = (target,) if isinstance(target, str) else target
    assert targets and all(t.startswith("mlsec.scan.formats.") for t in targets)
    assert callable(registry.analyzer_for(fmt))


def test_several_analyzers_for_one_format_all_run(tmp_path) -> None:
    """TEXT runs the chat-template check and the pickle probe, in that order."""
    from mlsec.artifact import open_artifact
    from mlsec.scan import scan

    p = tmp_path / "chat_template.jinja"
    # Protocol 0 that pickle.load runs before failing on the text after it, and a sandbox escape.
    p.write_bytes(b"cos\nsystem\n(S'true'\ntR{{ cycler.__init__.__globals__.os }}\n" * 3)
    report = scan(open_artifact(p))
    assert report.files[0].format == "text"
    symbols = {f.symbol for f in report.findings}
    assert "os.system" in symbols, report.findings
    assert len({f.rule for f in report.findings}) >= 2, report.findings


def test_every_archive_format_has_an_analyzer() -> None:
    for fmt in Format:
        if fmt.is_archive:
            assert fmt in registry.ANALYZERS, fmt
