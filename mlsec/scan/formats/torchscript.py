"""TorchScript code (``code/**/*.py`` in an archive written by ``torch.jit.save``).

That code is not Python: ``torch.jit.load`` compiles it with the TorchScript frontend, whose only
globals are ``torch`` (aten operators), ``ops`` (every registered operator namespace),
``__torch__`` (the classes and functions of the archive itself, and ``torch.classes`` custom
classes), ``CONSTANTS`` and a handful of special forms (``fork``, ``annotate``,
``uninitialized``...). Nothing in it can ``import`` a module or name a Python function of the
loading process, so what it can reach is exactly the operators and custom classes it names:

* operators that touch the file system, found in libtorch's own registry (``aten::save`` writes a
  file, ``aten::from_file`` reads — and with ``shared=True`` writes back to — any file,
  ``debugprims::load_tensor`` reads tensors from storage named at run time): HIGH;
* operators and ``torch.classes`` from a namespace libtorch does not register itself: native code
  of a library loaded at run time (``torch.ops.load_library``, an extension package) — MEDIUM,
  the same trust as an ONNX custom-op library; HIGH when the operator's name says it reads,
  writes or opens files (torchvision's ``image::read_file`` / ``write_file``, audio loaders);
* collective-communication operators (``c10d``, ``_c10d_functional``...): LOW, they talk to the
  process group the loading process set up.

The code is parsed with :mod:`ast` (TorchScript's printer emits Python syntax) and never run.
Archives for the lite interpreter also carry ``bytecode.pkl``, which that interpreter runs
instead of the code: the operator names in its string constants are judged the same way.
Everything else it uses — ``torch.conv2d``, ``ops.prim.RaiseException``, ``__torch__.*`` — is
libtorch's own computation and is not reported.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from mlsec.formats import Format
from mlsec.scan.base import Blob, ScanContext
from mlsec.scan.formats._zipfmt import ZipEntry, ZipIndex, read_member
from mlsec.scan.model import Finding, Severity

__all__ = [
    "BUILTIN_CLASS_NAMESPACES",
    "BUILTIN_OP_NAMESPACES",
    "FILE_OPS",
    "analyze_code",
    "bytecode_findings",
    "code_findings",
    "is_code_member",
]

# Operator namespaces libtorch registers itself (torch 2.13: the namespaces of
# torch._C._jit_get_all_schemas(), plus those of CUDA, mobile and older builds).
BUILTIN_OP_NAMESPACES = frozenset(
    {
        "aten",
        "prim",
        "prims",
        "quantized",
        "_quantized",
        "quantized_decomposed",
        "quantization",
        "_caffe2",
        "mkl",
        "mkldnn",
        "mkldnn_prepacked",
        "onednn",
        "sparse",
        "profiler",
        "inductor",
        "inductor_prims",
        "rngprims",
        "debugprims",
        "debug_mode_ops",
        "export",
        "onnx",
        "static_runtime",
        "_native",
        "_test",
        "_dtensor",
        "xnnpack",
        "_xnnpack",
        "vulkan",
        "vulkan_prepack",
        "metal",
        "metal_prepack",
        "_nnapi",
        "cuda",
        "cudnn",
        "miopen",
        "fbgemm",
        "attr",
        "upgraders",
    }
    | {"c10d", "_c10d_functional", "_c10d_functional_autograd", "symm_mem", "dist_rpc"}
)
# torch.classes namespaces libtorch registers (torch._C._jit_get_custom_class_schemas()).
BUILTIN_CLASS_NAMESPACES = frozenset(
    {
        "_nnapi",
        "aten",
        "backendutils",
        "mkldnn",
        "profiling",
        "quantized",
        "rnn",
        "sparse",
        "xnnpack",
        "metal",
        "vulkan",
        "c10d",
        "dist_c10d",
        "dist_rpc",
    }
)
_COLLECTIVE = frozenset(
    {"c10d", "_c10d_functional", "_c10d_functional_autograd", "symm_mem", "dist_rpc", "dist_c10d"}
)
# Built-in operators that touch files: every schema of libtorch that takes a file name.
FILE_OPS: dict[tuple[str, str], str] = {
    ("aten", "save"): "writes a file named by the code (aten::save)",
    ("aten", "from_file"): "reads any file into a tensor, and writes to it when shared=True",
    ("debugprims", "load_tensor"): "loads a tensor from storage named at run time",
}
# The name of a third-party operator says it touches files.
_FILE_WORDS = re.compile(r"(?:^|_)(?:read|write|load|save|open|file|path|fopen|mmap)", re.I)
_MAX_CODE = 32 * 1024 * 1024
_MAX_ALIAS_HOPS = 16
# "<archive>/code/..." for torch.jit.save; torch.package keeps TorchScript under ".data/ts_code/".
_CODE_MEMBER = re.compile(r"(?:^|/)code/.+\.py$")
# The lite interpreter (``_save_for_lite_interpreter``) runs bytecode.pkl, whose operator table
# names each operator as "namespace::name"; types name custom classes.
_BYTECODE_MEMBER = re.compile(r"(?:^|/)bytecode\.pkl$")
_QUALIFIED_OP = re.compile(r"^([A-Za-z_]\w*)::(\w+)$")
_CLASS_TYPE = re.compile(r"__torch__\.torch\.classes\.(\w+)\.(\w+)")


def is_code_member(name: str) -> bool:
    """``archive/code/__torch__/....py``: TorchScript source the loader compiles."""
    return _CODE_MEMBER.search(name) is not None


def analyze_code(blob: Blob, index: ZipIndex, ctx: ScanContext) -> Iterator[Finding]:
    """Judge every TorchScript code member of a PyTorch zip archive."""
    for entry in index.entries[: ctx.limits.max_members]:
        if entry.is_symlink:
            continue
        if is_code_member(entry.name):
            yield from _member(blob, index, entry, ctx.child(entry.name, Format.TEXT))
        elif _BYTECODE_MEMBER.search(entry.name):
            yield from _member(blob, index, entry, ctx.child(entry.name, Format.PICKLE))


def _member(blob: Blob, index: ZipIndex, entry: ZipEntry, ctx: ScanContext) -> Iterator[Finding]:
    cap = min(_MAX_CODE, ctx.limits.max_member_size)
    if entry.usize > cap:
        yield _unreadable(ctx, f"is {entry.usize} bytes, more than the {cap} analysed")
        return
    if entry.method != 0 and ctx.extract_budget() < entry.usize:
        yield _unreadable(ctx, "exceeds what is left of the extraction budget")
        return
    try:
        data = read_member(blob, index, entry, cap + 1)
    except Exception as exc:  # the zip layer reports corrupt members; this one stays unjudged
        yield _unreadable(ctx, f"cannot be read ({type(exc).__name__}: {exc})")
        return
    if entry.method != 0:
        ctx.charge_extracted(len(data))
    if len(data) > cap:
        yield _unreadable(ctx, f"inflates past {cap} bytes")
        return
    if ctx.format is Format.PICKLE:
        yield from bytecode_findings(data, ctx)
    else:
        yield from code_findings(data.decode("utf-8", "replace"), ctx)


def bytecode_findings(data: bytes, ctx: ScanContext) -> Iterator[Finding]:
    """The operators and custom classes a lite-interpreter ``bytecode.pkl`` names, read from the
    pickle's string constants (the pickle itself is judged by the pickle engine)."""
    import pickletools
    import warnings

    targets: dict[tuple[str, str, str], None] = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _op, arg, _pos in pickletools.genops(data):
                if not isinstance(arg, str):
                    continue
                if m := _QUALIFIED_OP.match(arg):
                    targets.setdefault(("op", m.group(1), m.group(2)))
                for c in _CLASS_TYPE.finditer(arg):
                    targets.setdefault(("class", c.group(1), c.group(2)))
    except Exception as exc:  # pickletools raises ValueError and others on malformed streams
        yield _unreadable(ctx, f"is not a readable pickle ({type(exc).__name__}: {exc})")
    for target in targets:
        finding = _judge(target, ctx)
        if finding is not None:
            yield finding


def _unreadable(ctx: ScanContext, what: str) -> Finding:
    return ctx.finding(
        "TORCHSCRIPT-UNPARSABLE",
        Severity.HIGH,
        f"TorchScript code {ctx.member!r} {what}",
        why="torch.jit.load compiles this code; what the scanner cannot read may name "
        "operators that touch files or load native code.",
    )


def code_findings(source: str, ctx: ScanContext) -> Iterator[Finding]:
    """The findings for one TorchScript source file."""
    try:
        tree = ast.parse(source, mode="exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        yield _unreadable(ctx, f"is not parsable ({type(exc).__name__}: {exc})")
        return
    aliases = _aliases(tree)
    inner = _inner_nodes(tree)
    targets: dict[tuple[str, str, str], None] = {}  # in order of appearance
    for node in ast.walk(tree):
        if id(node) in inner:
            continue
        chain = _chain(node, aliases)
        target = _resolve(chain) if chain is not None else None
        if target is not None:
            targets.setdefault(target)
    # A namespace bound to a name (``_0 = ops.lib``) is reported through the operators called on
    # it; on its own only when none is.
    named = {(kind, ns) for kind, ns, name in targets if name}
    for kind, ns, name in targets:
        if name or (kind, ns) not in named:
            finding = _judge((kind, ns, name), ctx)
            if finding is not None:
                yield finding


def _inner_nodes(tree: ast.AST) -> set[int]:
    """Nodes that are the inner part of a longer dotted path (``ops.lib`` in ``ops.lib.f``)."""
    inner: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            inner.add(id(node.value))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "getattr"
            and node.args
        ):
            inner.add(id(node.args[0]))
    return inner


def _dotted(node: ast.AST) -> list[str] | None:
    """``a.b.c`` as ``["a", "b", "c"]``; ``getattr(a.b, "c")`` too."""
    parts: list[str] = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "getattr"
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            parts.append(node.args[1].value)
            node = node.args[0]
        elif isinstance(node, ast.Name):
            parts.append(node.id)
            return parts[::-1]
        else:
            return None


# The importer's environment: "math" is the aten builtin module too (math.floor is aten::floor).
_ROOTS = frozenset({"torch", "math", "ops", "__torch__"})


def _aliases(tree: ast.AST) -> dict[str, list[str]]:
    """Local names bound to a dotted path under ``torch`` / ``ops`` / ``__torch__``
    (``_0 = ops.my_lib``; flow-insensitive: any binding counts)."""
    out: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        dotted = _dotted(value)
        if dotted is None:
            continue
        for t in targets:
            if isinstance(t, ast.Name) and t.id not in _ROOTS:
                out[t.id] = dotted
    return out


def _chain(node: ast.AST, aliases: dict[str, list[str]]) -> list[str] | None:
    """The full dotted path a Name/Attribute/getattr node denotes, aliases expanded; only the
    outermost node of a chain is taken (its inner parts are prefixes of it)."""
    if not isinstance(node, (ast.Attribute, ast.Name, ast.Call)):
        return None
    dotted = _dotted(node)
    if dotted is None:
        return None
    for _ in range(_MAX_ALIAS_HOPS):
        head = dotted[0]
        if head in _ROOTS or head not in aliases:
            break
        dotted = aliases[head] + dotted[1:]
    return dotted if dotted[0] in _ROOTS else None


def _resolve(chain: list[str]) -> tuple[str, str, str] | None:
    """``("op" | "class", namespace, name)`` for a path the TorchScript resolver maps to an
    operator or a custom class; None for everything else (the archive's own code, prefixes).

    Modelled on the resolver's sugared values: ``torch`` is the ``aten`` builtin module, ``ops.X``
    the builtin module ``X``, and a builtin module's ``autograd`` attribute is ``aten`` again
    (``torch.autograd.save`` is ``aten::save``); any other attribute of a module is its operator.
    """
    head, rest = chain[0], chain[1:]
    if head == "__torch__":
        if rest[:2] == ["torch", "classes"] and len(rest) >= 3:
            return ("class", rest[2], rest[3] if len(rest) > 3 else "")
        return None
    if head == "torch" and rest[:1] == ["classes"]:
        return ("class", rest[1], rest[2] if len(rest) > 2 else "") if len(rest) > 1 else None
    if head == "math" or (head == "torch" and rest[:1] != ["ops"]):
        ns = "aten"
    else:
        if head == "torch":
            rest = rest[1:]  # torch.ops.X is ops.X
        if not rest:
            return None
        ns, rest = rest[0], rest[1:]
    while rest[:1] == ["autograd"]:
        ns, rest = "aten", rest[1:]
    return ("op", ns, rest[0] if rest else "")


def _judge(target: tuple[str, str, str], ctx: ScanContext) -> Finding | None:
    kind, ns, name = target
    qual = f"{ns}::{name}" if name else ns
    if kind == "op" and (ns, name) in FILE_OPS:
        return ctx.finding(
            "TORCHSCRIPT-FILE-OP",
            Severity.HIGH,
            f"TorchScript calls {qual}, which {FILE_OPS[(ns, name)]}",
            why="Running the model touches the file system of the loading user with paths the "
            "model chooses.",
            symbol=qual,
        )
    builtin = BUILTIN_OP_NAMESPACES if kind == "op" else BUILTIN_CLASS_NAMESPACES
    if ns in _COLLECTIVE:
        return ctx.finding(
            "TORCHSCRIPT-COLLECTIVE",
            Severity.LOW,
            f"TorchScript uses {'operator' if kind == 'op' else 'class'} {qual} "
            "(distributed communication)",
            why="Collective operators send tensors over the process group the loading process "
            "set up.",
            symbol=qual,
        )
    if ns in builtin:
        return None
    what = "operator" if kind == "op" else "custom class"
    if name and _FILE_WORDS.search(name):
        return ctx.finding(
            "TORCHSCRIPT-FILE-OP",
            Severity.HIGH,
            f"TorchScript calls {what} {qual} from a library loaded at run time; its name says "
            "it touches files",
            why="Native code outside libtorch that reads or writes paths the model chooses.",
            symbol=qual,
        )
    return ctx.finding(
        "TORCHSCRIPT-CUSTOM-OP",
        Severity.MEDIUM,
        f"TorchScript uses {what} {qual}, registered by a native library loaded at run time",
        why="libtorch does not define this namespace: the loading process must have loaded a "
        "shared library (torch.ops.load_library, an extension package) whose code then runs.",
        symbol=qual,
    )
