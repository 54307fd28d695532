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

_TRUSTED_MODULES = (
    "keras", "keras_nlp", "keras_hub", "keras_cv", "tf_keras", "tensorflow.keras",
    "tensorflow.python.keras",
)  # fmt: skip
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
    if cls == "Lambda" and isinstance(cfg, dict):
        # Keras 2 serialises output_shape the same way as the function (func_dump / module)
        if cfg.get("output_shape_type") == "lambda" or _has_bytecode(cfg.get("output_shape")):
            yield ctx.finding(
                "KERAS-LAMBDA",
                Severity.CRITICAL,
                f"{where}: Lambda layer whose output_shape is marshalled Python bytecode",
                why="Keras unmarshals and runs the output_shape lambda when the layer is built.",
                symbol="Lambda",
            )
        elif cfg.get("output_shape_type") == "function":
            shape_fn = f"{cfg.get('output_shape_module', '')}.{cfg.get('output_shape')}"
            yield from _function(shape_fn, ctx, where)
    if isinstance(cfg, dict) and isinstance(cls, str):
        yield from _external_reads(cls, cfg, ctx, where)
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
        if _root(module) in _DANGEROUS_MODULES:
            yield ctx.finding(
                "KERAS-DANGEROUS-IMPORT",
                Severity.CRITICAL,
                f"{where}: config imports {module}.{cls}",
                why="Keras imports the module a config names and builds or calls what it finds "
                "there (CVE-2025-1550); this one runs commands, code or I/O.",
                symbol=f"{module}.{cls}",
            )
        else:
            custom.add(f"{module}.{cls}")


# Layers that read a vocabulary (or other asset) from a path given in their config when the model
# is built: a local file read or, through tf.io.gfile, a remote fetch, even with safe_mode=True
# (GHSA-qg93-c7p6-gg7f: StringLookup; IntegerLookup and TextVectorization share IndexLookup).
_FILE_KEYS = {
    "StringLookup": ("vocabulary", "idf_weights"),
    "IntegerLookup": ("vocabulary", "idf_weights"),
    "TextVectorization": ("vocabulary", "idf_weights"),
    "IndexLookup": ("vocabulary", "idf_weights"),
    # keras_nlp / keras_hub tokenizers take a vocabulary, merges or proto file path
    "WordPieceTokenizer": ("vocabulary",),
    "BytePairTokenizer": ("vocabulary", "merges"),
    "SentencePieceTokenizer": ("proto",),
    # TensorFlow Hub: loads and runs a SavedModel from a URL or path
    "KerasLayer": ("handle",),
}
# Keys that name a file or URL in any layer's config.
_PATH_KEYS = ("vocabulary_file", "vocab_file", "merges_file", "filepath", "origin", "url")
_URL_PREFIXES = ("http://", "https://", "ftp://", "gs://", "s3://", "hdfs://", "file://")


def _external_reads(
    cls: str, cfg: dict[str, Any], ctx: ScanContext, where: str
) -> Iterator[Finding]:
    keys = [*_FILE_KEYS.get(cls, ()), *_PATH_KEYS]
    for key in keys:
        value = cfg.get(key)
        if not isinstance(value, str) or not value.strip() or cls == "TFSMLayer":
            continue
        if key not in _FILE_KEYS.get(cls, ()) and not (
            value.startswith(_URL_PREFIXES) or "/" in value or "\\" in value
        ):
            continue
        yield ctx.finding(
            "KERAS-EXTERNAL-READ",
            Severity.HIGH,
            f"{where}: {cls} reads {key} from {value[:200]!r} when the model is loaded",
            why="The layer opens that local path or URL at load time, even with "
            "safe_mode=True: a local file read, or a request to any host (advisories "
            "GHSA-qg93-c7p6-gg7f and the like); what it loads was not scanned.",
            symbol=value[:200],
        )


def _function_module_ok(module: str) -> bool:
    # Inside Keras only the math a layer is built from: keras.utils.get_file, for one, downloads
    # and writes files when called from a config (CVE-2025-8747), keras.models.load_model loads
    # another model with safe_mode off, keras.applications downloads weights.
    parts = module.split(".")
    if not _module_ok(module):
        return False
    inner = parts[2:] if len(parts) > 1 and parts[1] == "src" else parts[1:]
    if inner[:1] == ["python"]:  # tensorflow.python.keras.backend
        inner = inner[2:] if inner[1:2] == ["keras"] else inner[1:]
    return bool(inner) and inner[0] in _SAFE_KERAS_FUNCTION_MODULES


_SAFE_KERAS_FUNCTION_MODULES = frozenset(
    {
        "activations", "losses", "metrics", "initializers", "regularizers", "constraints",
        "optimizers", "ops", "backend", "layers", "random",
    }
)  # fmt: skip
# Callables that load a model, switch safe mode off, fetch or write files, or deserialise: named
# by a config (a Lambda's function, a loss, …) they chain another load with safe_mode=False
# (CVE-2025-8747, CVE-2025-9906) wherever they live.
_LOADER_NAMES = frozenset(
    {
        "load_model", "load_weights", "save", "save_model", "save_weights", "export",
        "model_from_json", "model_from_yaml", "model_from_config", "deserialize_keras_object",
        "deserialize", "enable_unsafe_deserialization", "set_global_attribute", "get_file",
        "func_load", "load_data", "load_img", "TFSMLayer", "custom_object_scope",
        "register_keras_serializable", "get_custom_objects", "load", "loads", "load_module",
    }
)  # fmt: skip
# Keras namespaces whose functions change how later objects are loaded or touch files.
_STATEFUL_KERAS = ("saving", "config", "utils", "datasets", "export", "applications", "models")


def _function(name: str, ctx: ScanContext, where: str) -> Iterator[Finding]:
    module = name.rsplit(".", 1)[0] if "." in name else name
    fn = name.rsplit(".", 1)[-1]
    parts = module.split(".")
    inner = parts[2:] if len(parts) > 1 and parts[1] == "src" else parts[1:]
    stateful = _module_ok(module) and bool(inner) and inner[0] in _STATEFUL_KERAS
    if fn in _LOADER_NAMES or "global_state" in parts:
        yield ctx.finding(
            "KERAS-FUNCTION-IMPORT",
            Severity.CRITICAL,
            f"{where}: config calls {name}",
            why="Keras calls functions named in a config even with safe_mode=True; this one "
            "loads another model or switches safe mode off, downloads or writes files "
            "(CVE-2025-8747, CVE-2025-9906), and the chained load runs code.",
            symbol=name,
        )
        return
    if _function_module_ok(module):
        return
    dangerous = _root(module) in _DANGEROUS_MODULES
    yield ctx.finding(
        "KERAS-FUNCTION-IMPORT",
        Severity.CRITICAL if dangerous else Severity.HIGH,
        f"{where}: config names the function {name}"
        + (" (a Keras namespace that loads or writes state)" if stateful else ""),
        why="Keras imports and calls functions named in a config, even with safe_mode=True "
        "(CVE-2025-1550).",
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
