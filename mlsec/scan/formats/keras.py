"""Keras models: v3 ``.keras`` zips (``config.json``), and the judgement of a model config wherever
it is found (legacy HDF5 ``.h5`` files: :mod:`mlsec.scan.formats.hdf5`; ``model.to_json()``
files: :mod:`mlsec.scan.formats.jsonconfig`), without keras or tensorflow.

Keras rebuilds a model from its JSON config. What runs code there: ``Lambda`` layers carrying
marshalled Python bytecode (``__lambda__`` / ``function_type: lambda``), functions named by module
(``{"module": "os", "class_name": "function", ...}``, the CVE-2025-1550 class: safe_mode does not
stop it), and custom objects from modules outside Keras, which import code the user must trust.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from mlsec.scan.base import Blob, ScanContext
from mlsec.scan.formats.zip import analyze_zip, read_index, read_member
from mlsec.scan.model import Finding, Severity

__all__ = ["analyze_keras_zip", "config_findings"]

_TRUSTED_MODULES = ("keras", "keras_nlp", "keras_hub", "keras_cv", "tf_keras", "tensorflow.keras")
# Modules whose functions, when named by a config, amount to code execution.
_DANGEROUS_MODULES = frozenset(
    {
        "os", "posix", "nt", "subprocess", "sys", "builtins", "__builtin__", "shutil", "runpy",
        "importlib", "pty", "socket", "code", "codeop", "pickle", "marshal", "ctypes", "webbrowser",
        "commands", "platform", "pdb", "timeit", "multiprocessing", "tempfile", "pathlib",
        "io", "functools", "operator", "types", "inspect", "requests", "urllib", "httpx",
    }
)  # fmt: skip
_RISKY_TF_OPS = ("io.", "py_func", "numpy_function", "py_function", "raw_ops", "debugging", "print")
_MAX_CONFIG = 64 * 1024 * 1024
_MAX_DEPTH = 200


def _module_ok(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in _TRUSTED_MODULES)


def _root(module: str) -> str:
    return module.split(".", 1)[0]


def config_findings(config: Any, ctx: ScanContext, where: str) -> Iterator[Finding]:
    """Findings for a Keras model config (already parsed JSON), located at ``where``."""
    stack: list[tuple[Any, int]] = [(config, 0)]
    custom: set[str] = set()
    while stack:
        node, depth = stack.pop()
        if depth > _MAX_DEPTH:
            yield ctx.finding(
                "KERAS-CONFIG-TOO-DEEP",
                Severity.HIGH,
                f"{where}: config nested deeper than {_MAX_DEPTH} levels; not fully inspected",
                why="What the scanner did not walk may hide a Lambda layer.",
            )
            continue
        if isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
            continue
        if not isinstance(node, dict):
            continue
        stack.extend((v, depth + 1) for v in node.values())
        yield from _object(node, ctx, where, custom)
    for name in sorted(custom):
        yield ctx.finding(
            "KERAS-CUSTOM-OBJECT",
            Severity.MEDIUM,
            f"{where}: custom object {name} comes from outside Keras",
            why="Loading the model imports that module: it must be installed and trusted.",
            symbol=name,
        )


def _object(
    node: dict[str, Any], ctx: ScanContext, where: str, custom: set[str]
) -> Iterator[Finding]:
    cls = node.get("class_name")
    module = node.get("module")
    cfg = node.get("config")
    if cls == "__lambda__" or (
        cls == "Lambda"
        and isinstance(cfg, dict)
        and (cfg.get("function_type") == "lambda" or _has_bytecode(cfg.get("function")))
    ):
        name = cfg.get("name") if cls == "Lambda" and isinstance(cfg, dict) else None
        yield ctx.finding(
            "KERAS-LAMBDA",
            Severity.CRITICAL,
            f"{where}: Lambda layer with marshalled Python bytecode"
            + (f" ({name!r})" if name else ""),
            why="Keras unmarshals and runs the lambda's bytecode when the model is loaded or "
            "called (safe_mode only guards some loaders).",
            symbol="Lambda",
        )
        return
    if cls in ("function", "__function__") and isinstance(module, str):
        yield from _function(f"{module}.{cfg}" if isinstance(cfg, str) else module, ctx, where)
        return
    if cls == "Lambda" and isinstance(cfg, dict) and cfg.get("function_type") == "function":
        # Keras 2: {"function": "fn", "function_type": "function", "module": "pkg.mod"}
        yield from _function(f"{cfg.get('module', '')}.{cfg.get('function')}", ctx, where)
    if cls == "TFSMLayer" and isinstance(cfg, dict):
        path = cfg.get("filepath")
        yield ctx.finding(
            "KERAS-TFSMLAYER",
            Severity.HIGH,
            f"{where}: TFSMLayer loads the TensorFlow SavedModel at {path!r}",
            why="The external SavedModel is loaded and run when the model is, even with "
            "safe_mode=True (CVE-2026-1462); it is not part of what was scanned.",
            symbol=str(path),
        )
    if cls == "TFOpLambda" and isinstance(cfg, dict):
        fn = str(cfg.get("function", ""))
        risky = any(k in fn for k in _RISKY_TF_OPS)
        yield ctx.finding(
            "KERAS-TF-OP",
            Severity.HIGH if risky else Severity.LOW,
            f"{where}: TFOpLambda layer calls tf.{fn}",
            why="TFOpLambda layers call TensorFlow functions by name; file and Python ops among "
            "them read, write or run code.",
            symbol=fn,
        )
    if isinstance(module, str) and isinstance(cls, str) and not _module_ok(module):
        custom.add(f"{module}.{cls}")


def _function_module_ok(module: str) -> bool:
    # Inside Keras only the math a layer is built from: keras.utils.get_file, for one, downloads
    # and writes files when called from a config (CVE-2025-8747).
    parts = module.split(".")
    if not _module_ok(module):
        return False
    inner = parts[2:] if len(parts) > 1 and parts[1] == "src" else parts[1:]
    return bool(inner) and inner[0] in _SAFE_KERAS_FUNCTION_MODULES


_SAFE_KERAS_FUNCTION_MODULES = frozenset(
    {
        "activations", "losses", "metrics", "initializers", "regularizers", "constraints",
        "optimizers", "ops", "backend", "layers", "models", "random", "applications",
    }
)  # fmt: skip


def _function(name: str, ctx: ScanContext, where: str) -> Iterator[Finding]:
    module = name.rsplit(".", 1)[0] if "." in name else name
    if _function_module_ok(module) and not name.endswith((".get_file", ".save", ".save_model")):
        return
    dangerous = _root(module) in _DANGEROUS_MODULES or name.endswith(".get_file")
    yield ctx.finding(
        "KERAS-FUNCTION-IMPORT",
        Severity.CRITICAL if dangerous else Severity.HIGH,
        f"{where}: config names the function {name}",
        why="Keras imports and calls functions named in a config, even with safe_mode=True "
        "(CVE-2025-1550; keras.utils.get_file writes files: CVE-2025-8747).",
        symbol=name,
    )


def _has_bytecode(fn: object) -> bool:
    # Keras 2: ["<base64 marshal>", defaults, closure]. (Keras 3's {"class_name": "__lambda__"}
    # is reported when the walk reaches it.)
    return isinstance(fn, list) and bool(fn) and isinstance(fn[0], str)


def analyze_keras_zip(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """A Keras v3 archive: the zip checks and member dispatch (``config.json`` goes to the JSON
    analyzer like any JSON member), and a config that does not parse fails closed."""
    yield from analyze_zip(blob, ctx)
    with blob.open() as f:
        index = read_index(f, blob.size, ctx.limits.max_members)
    for entry in index.entries:
        if entry.name != "config.json":
            continue
        try:
            json.loads(read_member(blob, index, entry, _MAX_CONFIG))
        except (ValueError, RecursionError) as exc:
            yield ctx.finding(
                "KERAS-CONFIG-UNREADABLE",
                Severity.HIGH,
                f"config.json is not valid JSON ({exc})",
                why="What the scanner cannot parse may hide a Lambda layer; Keras may read it.",
            )
