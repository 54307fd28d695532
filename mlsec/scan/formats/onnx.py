"""ONNX models, walked as protobuf without the onnx library.

What matters in an ONNX file is what a runtime will load beside it: operators from domains no
standard runtime implements (the user must install and trust a custom-op shared library), and
external-data ``location`` entries, which a runtime opens relative to the model directory — an
absolute path or a ``..`` reads (or, with some tools, writes) files elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from mlsec.scan.base import Blob, ScanContext
from mlsec.scan.formats._members import unsafe_path
from mlsec._protobuf import fields, text
from mlsec.scan.model import Finding, Severity

__all__ = ["STANDARD_DOMAINS", "analyze_onnx"]

STANDARD_DOMAINS = frozenset(
    {
        "",
        "ai.onnx",
        "ai.onnx.ml",
        "ai.onnx.training",
        "ai.onnx.preview.training",
        "com.microsoft",
        "com.microsoft.nchwc",
        "com.microsoft.experimental",
        "com.ms.internal.nhwc",
    }
)
# onnxruntime-training's PythonOp calls a Python autograd function by name; onnxruntime-extensions'
# PyOp (domain ai.onnx.contrib) calls a Python function registered by the loading process.
_PYTHON_OPS = frozenset({"PythonOp", "PythonOpGrad", "PyOp"})
_MAX_NESTING = 64


@dataclass
class _Model:
    nodes: dict[tuple[str, str], int] = field(default_factory=dict)  # (domain, op) -> count
    functions: set[tuple[str, str]] = field(default_factory=set)
    locations: list[tuple[str, str]] = field(default_factory=list)  # (tensor name, location)
    external_keys: list[tuple[str, str, str]] = field(default_factory=list)  # other entries


class _Walker:
    def __init__(self, buf: memoryview | bytes) -> None:
        self.buf = buf
        self.model = _Model()

    def walk_model(self) -> None:
        for f, w, a, b in fields(self.buf):
            if w != 2:
                continue
            if f == 7:
                self.graph(a, b, 0)
            elif f == 25:
                self.function(a, b)
            elif f == 20:  # TrainingInfoProto: initialization=1, algorithm=2 (graphs)
                for f2, w2, a2, b2 in fields(self.buf, a, b):
                    if w2 == 2 and f2 in (1, 2):
                        self.graph(a2, b2, 1)

    def graph(self, a: int, b: int, depth: int) -> None:
        if depth > _MAX_NESTING:
            raise ValueError("subgraphs nested too deeply")
        for f, w, x, y in fields(self.buf, a, b):
            if w != 2:
                continue
            if f == 1:
                self.node(x, y, depth)
            elif f == 5:
                self.tensor(x, y)
            elif f == 15:  # SparseTensorProto: values=1, indices=2
                for f2, w2, x2, y2 in fields(self.buf, x, y):
                    if w2 == 2 and f2 in (1, 2):
                        self.tensor(x2, y2)

    def node(self, a: int, b: int, depth: int) -> None:
        op = domain = ""
        for f, w, x, y in fields(self.buf, a, b):
            if w != 2:
                continue
            if f == 4:
                op = text(self.buf, x, y)
            elif f == 7:
                domain = text(self.buf, x, y)
            elif f == 5:
                self.attribute(x, y, depth)
        key = (domain, op)
        self.model.nodes[key] = self.model.nodes.get(key, 0) + 1

    def attribute(self, a: int, b: int, depth: int) -> None:
        for f, w, x, y in fields(self.buf, a, b):
            if w != 2:
                continue
            if f in (5, 10):
                self.tensor(x, y)
            elif f in (6, 11):
                self.graph(x, y, depth + 1)
            elif f in (22, 23):
                for f2, w2, x2, y2 in fields(self.buf, x, y):
                    if w2 == 2 and f2 in (1, 2):
                        self.tensor(x2, y2)

    def tensor(self, a: int, b: int) -> None:
        name = ""
        for f, w, x, y in fields(self.buf, a, b):
            if w != 2:
                continue
            if f == 8:
                name = text(self.buf, x, y)
            elif f == 13:  # StringStringEntryProto key=1 value=2
                key = value = ""
                for f2, w2, x2, y2 in fields(self.buf, x, y):
                    if w2 == 2 and f2 == 1:
                        key = text(self.buf, x2, y2)
                    elif w2 == 2 and f2 == 2:
                        value = text(self.buf, x2, y2)
                if key == "location":
                    self.model.locations.append((name, value))
                else:
                    self.model.external_keys.append((name, key, value))

    def function(self, a: int, b: int) -> None:
        name = domain = ""
        for f, w, x, y in fields(self.buf, a, b):
            if w != 2:
                continue
            if f == 1:
                name = text(self.buf, x, y)
            elif f == 10:
                domain = text(self.buf, x, y)
            elif f == 7:
                self.node(x, y, 1)
        self.model.functions.add((domain, name))


def analyze_onnx(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """Walk the model graph (and subgraphs, functions, training graphs) for custom operator
    domains, Python operators and external-data locations outside the model directory."""
    with blob.view() as buf:
        walker = _Walker(buf)
        walker.walk_model()
        model = walker.model
    yield from _operators(model, ctx)
    yield from _locations(model, ctx)
    yield from _external_keys(model, ctx)


def _operators(model: _Model, ctx: ScanContext) -> Iterator[Finding]:
    custom: dict[str, set[str]] = {}
    for (domain, op), _count in sorted(model.nodes.items()):
        if (domain, op) in model.functions:
            continue  # a function defined in the model itself
        if op in _PYTHON_OPS:
            yield ctx.finding(
                "ONNX-PYTHON-OP",
                Severity.HIGH,
                f"operator {domain or 'ai.onnx'}.{op} runs a Python function",
                why="onnxruntime-training's PythonOp imports and calls Python code when the "
                "graph runs.",
                symbol=f"{domain}.{op}",
            )
        elif domain not in STANDARD_DOMAINS:
            custom.setdefault(domain, set()).add(op)
    for domain, ops in sorted(custom.items()):
        yield ctx.finding(
            "ONNX-CUSTOM-OP",
            Severity.MEDIUM,
            f"custom operator domain {domain!r} ({', '.join(sorted(ops)[:10])}) needs a custom "
            "op library",
            why="A custom-op shared library is native code the user must install and trust.",
            symbol=domain,
        )


_EXTERNAL_KEYS = frozenset({"offset", "length", "checksum", "basepath"})


def _external_keys(model: _Model, ctx: ScanContext) -> Iterator[Finding]:
    for tensor, key, value in model.external_keys:
        if key not in _EXTERNAL_KEYS:
            yield ctx.finding(
                "ONNX-EXTERNAL-DATA-KEY",
                Severity.HIGH,
                f"tensor {tensor!r} has an unknown external-data key {key!r}",
                why="onnx <= 1.20 set every external-data key as an attribute of an internal "
                "object (CVE-2026-34445): unknown keys overwrite its state.",
                symbol=tensor,
            )
        elif key in ("offset", "length") and not (value.isdigit() and int(value) < 1 << 63):
            yield ctx.finding(
                "ONNX-EXTERNAL-DATA-KEY",
                Severity.MEDIUM,
                f"tensor {tensor!r} has external-data {key} {value[:40]!r}, not a sane integer",
                why="Loaders trust these numbers to seek and allocate.",
                symbol=tensor,
            )


def _locations(model: _Model, ctx: ScanContext) -> Iterator[Finding]:
    for tensor, location in model.locations:
        reason = unsafe_path(location)
        if reason is None and not location:
            reason = "is empty"
        if reason is None:
            continue
        yield ctx.finding(
            "ONNX-EXTERNAL-DATA-PATH",
            Severity.HIGH,
            f"tensor {tensor!r} takes its data from {location!r}, which {reason}",
            why="Runtimes open external data relative to the model directory; a path that "
            "escapes it reads other files into the model (and some tools write there).",
            symbol=tensor,
        )
