"""The one table from format to analyzer(s). Adding a format means adding one line here.

Entries name ``module:function`` so analyzers import lazily: scanning a directory of safetensors
files never imports the pickle VM, and ``mlsec --help`` imports none of them.

**Extending** (docs/scan.md): an extra analyzer runs after the built-in ones of its format. Add
one in-process with :func:`register_analyzer`, or for the CLI with the environment variable
``MLSEC_ANALYZERS`` (``FORMAT=module:function`` entries separated by commas)::

    MLSEC_ANALYZERS="pickle=mypkg.checks:analyze_pickle" mlsec scan model/

An analyzer is ``(blob: Blob, ctx: ScanContext) -> Iterator[Finding]``. (Not entry points:
enumerating installed distributions costs ~25 ms of start-up on every scan.)
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

from mlsec.formats import Format
from mlsec.scan.base import Analyzer, Blob, ScanContext
from mlsec.scan.model import Finding

__all__ = ["ANALYZERS", "ENV_VAR", "analyzer_for", "register_analyzer"]

ENV_VAR = "MLSEC_ANALYZERS"

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
_extra: dict[Format, list[str | Analyzer]] = {}
_plugins_loaded = False


def register_analyzer(fmt: Format, analyzer: str | Analyzer) -> None:
    """Run ``analyzer`` (a callable, or ``"module:function"``) on every file of format ``fmt``,
    after the built-in analyzers. Its findings appear in reports like the built-in ones."""
    _extra.setdefault(fmt, []).append(analyzer)
    _cache.pop(fmt, None)


def _load_plugins() -> None:
    """``MLSEC_ANALYZERS`` entries, once per process; a malformed entry or a name that is not a
    format value is a usage error naming the entry."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    import os

    from mlsec.errors import UsageError

    for entry in filter(None, (e.strip() for e in os.environ.get(ENV_VAR, "").split(","))):
        name, sep, target = entry.partition("=")
        module, colon, attr = target.partition(":")
        if not sep or not colon or not module or not attr:
            raise UsageError(f"{ENV_VAR}: {entry!r} is not FORMAT=module:function")
        try:
            fmt = Format(name.strip())
        except ValueError:
            raise UsageError(
                f"{ENV_VAR}: {name!r} is not a format (one of {', '.join(f.value for f in Format)})"
            ) from None
        register_analyzer(fmt, target.strip())


def analyzer_for(fmt: Format) -> Analyzer | None:
    """The analyzer for ``fmt`` (several run in order), or None when the format carries no
    executable content."""
    _load_plugins()
    if fmt in _cache:
        return _cache[fmt]
    target = ANALYZERS.get(fmt)
    targets: list[str | Analyzer] = [target] if isinstance(target, str) else list(target or ())
    targets.extend(_extra.get(fmt, ()))
    fns: list[Analyzer] = []
    for t in targets:
        if not isinstance(t, str):
            fns.append(t)
            continue
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
