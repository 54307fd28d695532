"""TensorFlow SavedModel (``saved_model.pb``) and frozen GraphDef ``.pb`` files.

A TF graph cannot carry Python, but its ops can read and write files or call back into Python
functions of the loading process. The graph is walked as protobuf — every NodeDef of the main
graphs and of the function library — and each op name is checked; nothing is grepped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from mlsec.scan.base import Blob, ScanContext
from mlsec._protobuf import fields, text
from mlsec.scan.model import Finding, Severity

__all__ = [
    "DANGEROUS_OPS",
    "analyze_graphdef",
    "analyze_keras_metadata",
    "analyze_pbtxt",
    "analyze_protobuf",
    "analyze_savedmodel",
]

_PY = "calls a Python function of the loading process"
_READ = "reads files"
_WRITE = "writes files"
DANGEROUS_OPS: dict[str, tuple[Severity, str]] = {
    "PyFunc": (Severity.HIGH, _PY),
    "PyFuncStateless": (Severity.HIGH, _PY),
    "EagerPyFunc": (Severity.HIGH, _PY),
    "ReadFile": (Severity.HIGH, _READ),
    "WriteFile": (Severity.CRITICAL, _WRITE),
    "MatchingFiles": (Severity.HIGH, "lists files"),
    "ImmutableConst": (Severity.HIGH, "memory-maps a file named in the graph"),
    "Save": (Severity.HIGH, _WRITE),
    "SaveV2": (Severity.HIGH, _WRITE),
    "SaveSlices": (Severity.HIGH, _WRITE),
    "MergeV2Checkpoints": (Severity.HIGH, "moves and deletes files"),
    "Restore": (Severity.HIGH, _READ),
    "RestoreV2": (Severity.HIGH, _READ),
    "RestoreSlice": (Severity.HIGH, _READ),
    "WholeFileReader": (Severity.HIGH, _READ),
    "WholeFileReaderV2": (Severity.HIGH, _READ),
    "TextLineReader": (Severity.HIGH, _READ),
    "TextLineReaderV2": (Severity.HIGH, _READ),
    "FixedLengthRecordReader": (Severity.HIGH, _READ),
    "FixedLengthRecordReaderV2": (Severity.HIGH, _READ),
    "TFRecordReader": (Severity.HIGH, _READ),
    "TFRecordReaderV2": (Severity.HIGH, _READ),
    "TextLineDataset": (Severity.HIGH, _READ),
    "TFRecordDataset": (Severity.HIGH, _READ),
    "TFRecordDatasetV2": (Severity.HIGH, _READ),
    "FixedLengthRecordDataset": (Severity.HIGH, _READ),
    "FixedLengthRecordDatasetV2": (Severity.HIGH, _READ),
    "DatasetToTFRecord": (Severity.HIGH, _WRITE),
    "SaveDataset": (Severity.HIGH, _WRITE),
    "SaveDatasetV2": (Severity.HIGH, _WRITE),
    "ExperimentalDatasetToTFRecord": (Severity.HIGH, _WRITE),
    "CreateSummaryFileWriter": (Severity.HIGH, _WRITE),
    "WriteSummary": (Severity.MEDIUM, _WRITE),
    "DebugIdentity": (Severity.MEDIUM, "sends tensors to debug URLs (files)"),
    "DebugIdentityV2": (Severity.MEDIUM, "sends tensors to debug URLs (files)"),
    "PrintV2": (Severity.LOW, "prints to a stream the graph names (can be a file)"),
    "LoadAndRemapMatrix": (Severity.HIGH, _READ),
    "DecodeProtoV2": (Severity.LOW, "parses protos with descriptors loaded from files"),
}
# Ops every SavedModel uses to save and restore its own variables.
_CHECKPOINT_OPS = frozenset(
    {"Save", "SaveV2", "SaveSlices", "MergeV2Checkpoints", "Restore", "RestoreV2", "RestoreSlice"}
)
_MAX_NESTING = 32


@dataclass(frozen=True, slots=True)
class _Op:
    op: str
    node: str
    function: str  # "" for the main graph


class _Walker:
    def __init__(self, buf: memoryview | bytes) -> None:
        self.buf = buf
        self.ops: list[_Op] = []

    def saved_model(self) -> None:
        for f, w, a, b in fields(self.buf):
            if f == 2 and w == 2:  # MetaGraphDef
                for f2, w2, a2, b2 in fields(self.buf, a, b):
                    if f2 == 2 and w2 == 2:
                        self.graph(a2, b2)

    def graph(self, a: int, b: int) -> None:
        for f, w, x, y in fields(self.buf, a, b):
            if w != 2:
                continue
            if f == 1:
                self.node(x, y, "")
            elif f == 2:  # FunctionDefLibrary: function=1
                for f2, w2, x2, y2 in fields(self.buf, x, y):
                    if f2 == 1 and w2 == 2:
                        self.function(x2, y2)

    def function(self, a: int, b: int) -> None:
        name = ""
        nodes: list[tuple[int, int]] = []
        for f, w, x, y in fields(self.buf, a, b):
            if w != 2:
                continue
            if f == 1:  # OpDef signature: name=1
                for f2, w2, x2, y2 in fields(self.buf, x, y):
                    if f2 == 1 and w2 == 2:
                        name = text(self.buf, x2, y2)
            elif f == 3:
                nodes.append((x, y))
        for x, y in nodes:
            self.node(x, y, name)

    def node(self, a: int, b: int, function: str) -> None:
        name = op = ""
        for f, w, x, y in fields(self.buf, a, b):
            if w == 2 and f == 1:
                name = text(self.buf, x, y)
            elif w == 2 and f == 2:
                op = text(self.buf, x, y)
        self.ops.append(_Op(op, name, function))


def _standard_checkpointing(op: _Op) -> bool:
    if op.op not in _CHECKPOINT_OPS:
        return False
    # TF1 Saver nodes live under "save/"; TF2 puts them in the traced save/restore functions.
    fn = op.function
    return (
        op.node.startswith(("save/", "save_", "saver"))
        or "_traced_save" in fn
        or "_traced_restore" in fn
        or fn.startswith(("__inference_save_", "__inference_restore_"))
    )


def _findings(ops: list[_Op], ctx: ScanContext) -> Iterator[Finding]:
    reported: set[tuple[str, str]] = set()
    for op in ops:
        rule = DANGEROUS_OPS.get(op.op)
        if rule is None or _standard_checkpointing(op):
            continue
        key = (op.op, op.function)
        if key in reported:
            continue
        reported.add(key)
        severity, what = rule
        where = f"function {op.function!r}" if op.function else "the graph"
        yield ctx.finding(
            "TF-DANGEROUS-OP",
            severity,
            f"op {op.op} (node {op.node!r} in {where}) {what}",
            why="Running the model executes this op with the loading user's file access.",
            symbol=op.op,
        )


def analyze_savedmodel(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """Walk every graph and function of a SavedModel for file and Python ops."""
    with blob.view() as buf:
        walker = _Walker(buf)
        walker.saved_model()
    yield from _findings(walker.ops, ctx)


def analyze_graphdef(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """A frozen GraphDef (``.pb``): the same op check."""
    with blob.view() as buf:
        walker = _Walker(buf)
        walker.graph(0, len(buf))
    yield from _findings(walker.ops, ctx)


def analyze_keras_metadata(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """``keras_metadata.pb`` of a Keras-saved SavedModel: each SavedObject's JSON metadata holds
    the layer config (Lambda bytecode included), which Keras deserializes on load."""
    from mlsec.scan.formats.keras import config_findings

    configs: list[str] = []
    with blob.view() as buf:
        for f, w, a, b in fields(buf):
            if f == 1 and w == 2:  # SavedObject: metadata = 4
                for f2, w2, a2, b2 in fields(buf, a, b):
                    if f2 == 4 and w2 == 2:
                        configs.append(text(buf, a2, b2))
    for i, raw in enumerate(configs):
        try:
            config = json.loads(raw)
        except (ValueError, RecursionError):
            yield ctx.finding(
                "KERAS-CONFIG-UNREADABLE",
                Severity.HIGH,
                f"keras_metadata.pb object {i}: metadata is not valid JSON",
                why="What the scanner cannot parse may hide a Lambda layer.",
            )
            continue
        yield from config_findings(config, ctx, f"keras_metadata.pb object {i}")


_PBTXT_OP = re.compile(rb'\bop\s*:\s*"([A-Za-z0-9_>.]+)"')
_PBTXT_NAME = re.compile(rb'\bname\s*:\s*"([^"]*)"')


def analyze_pbtxt(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """A graph in protobuf text format: every ``op: "..."`` field, with the node name before it."""
    ops: list[_Op] = []
    with blob.open() as f:
        data = f.read(256 * 1024 * 1024)
    for m in _PBTXT_OP.finditer(data):
        names = _PBTXT_NAME.findall(data, max(0, m.start() - 4096), m.start())
        node = names[-1].decode("utf-8", "replace") if names else ""
        ops.append(_Op(m.group(1).decode(), node, ""))
    yield from _findings(ops, ctx)


def analyze_protobuf(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """Other protobuf files (``.pb``, ``.onnx`` not recognised as ONNX by its first fields).

    Tried as ONNX when named ``.onnx``, else as a frozen GraphDef; a file that is neither yields
    nothing (protobuf is used for many harmless things).
    """
    name = (ctx.member or blob.name).lower()
    if name.endswith(".onnx"):
        from mlsec.scan.formats.onnx import analyze_onnx

        yield from analyze_onnx(blob, ctx)
        return
    if name.endswith("keras_metadata.pb"):
        yield from analyze_keras_metadata(blob, ctx)
        return
    try:
        found = list(analyze_graphdef(blob, ctx))
    except ValueError:
        return
    yield from found
