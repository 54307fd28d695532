"""TensorFlow SavedModel (``saved_model.pb``) and frozen GraphDef ``.pb`` files.

A TF graph cannot carry Python, but its ops can read and write files or call back into Python
functions of the loading process. The graph is walked as protobuf — every NodeDef of the main
graphs and of the function library — and each op name is checked; nothing is grepped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from mlsec._protobuf import fields, text
from mlsec.scan.base import Blob, ScanContext
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
    # A graph that calls back into Python runs whatever the loading process registered under the
    # token it names: code execution by design, never part of a model's own computation.
    "PyFunc": (Severity.CRITICAL, _PY),
    "PyFuncStateless": (Severity.CRITICAL, _PY),
    "EagerPyFunc": (Severity.CRITICAL, _PY),
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
# The ops of tf.train.Saver / the TF2 functional saver. They are standard where the SaverDef puts
# them: writers only in the subgraph of save_tensor_name (it runs when the user saves), readers in
# that of save_tensor_name or restore_op_name (the TF1 loader runs the restore op at load time, so
# a writer there would run on load and stays flagged).
_CHECKPOINT_WRITERS = frozenset({"Save", "SaveV2", "SaveSlices", "MergeV2Checkpoints"})
_CHECKPOINT_READERS = frozenset({"Restore", "RestoreV2", "RestoreSlice"})
_CHECKPOINT_OPS = _CHECKPOINT_WRITERS | _CHECKPOINT_READERS
_MAX_NESTING = 32
_MAX_PLACES = 2_000_000

# A place where an op sits: ("g", node name) in the main graph, ("f", function name) in the library.
_Place = tuple[str, str]


@dataclass(frozen=True, slots=True)
class _Op:
    op: str
    node: str
    function: str  # "" for the main graph


@dataclass
class _Meta:
    """What one MetaGraphDef says about where things run."""

    ops: list[_Op] = field(default_factory=list)
    inputs: dict[str, list[str]] = field(default_factory=dict)  # main-graph node -> its inputs
    calls: dict[_Place, set[str]] = field(default_factory=dict)  # place -> functions it calls
    functions: set[str] = field(default_factory=set)
    gradients: dict[str, set[str]] = field(default_factory=dict)
    saver: dict[int, str] = field(default_factory=dict)  # SaverDef field -> tensor / op name
    live: list[_Place] = field(default_factory=list)  # signatures, init ops, object graph


def _node_name(tensor: str) -> str:
    """``^name`` (a control input), ``name:0`` and ``name:out:0`` (in a function) -> ``name``."""
    return tensor.lstrip("^").split(":", 1)[0]


class _Walker:
    def __init__(self, buf: memoryview | bytes) -> None:
        self.buf = buf
        self.metas: list[_Meta] = []

    def saved_model(self) -> None:
        for f, w, a, b in fields(self.buf):
            if f == 2 and w == 2:
                self.meta_graph(a, b)

    def meta_graph(self, a: int, b: int) -> None:
        """MetaGraphDef: meta_info_def=1, graph_def=2, saver_def=3, collection_def=4,
        signature_def=5, object_graph_def=7 (tensorflow/core/protobuf/meta_graph.proto)."""
        meta = _Meta()
        self.metas.append(meta)
        for f, w, x, y in fields(self.buf, a, b):
            if w != 2:
                continue
            if f == 1:  # MetaInfoDef.function_aliases=8: map<function name, alias>
                for f2, w2, x2, y2 in fields(self.buf, x, y):
                    if f2 == 8 and w2 == 2:
                        meta.live.extend(("f", n) for n in self._strings((x2, y2), 1))
            elif f == 2:
                self.graph(meta, x, y)
            elif f == 3:  # SaverDef: filename_tensor_name=1, save_tensor_name=2, restore_op_name=3
                for f2, w2, x2, y2 in fields(self.buf, x, y):
                    if w2 == 2 and f2 in (1, 2, 3):
                        meta.saver[f2] = _node_name(text(self.buf, x2, y2))
            elif f == 4:  # map<string, CollectionDef>; CollectionDef.node_list=1 {value=1}
                for lst in self._submessages(self._map_value(x, y), 1):
                    for name in self._strings(lst, 1):
                        meta.live.append(("g", _node_name(name)))
            elif f == 5:  # map<string, SignatureDef>: inputs=1, outputs=2 map<string, TensorInfo>
                sig = self._map_value(x, y)
                if sig is not None:
                    for f2, w2, x2, y2 in fields(self.buf, *sig):
                        if w2 == 2 and f2 in (1, 2):
                            info = self._map_value(x2, y2)
                            if info is not None:
                                self.tensor_info(meta, info, 0)
            elif f == 7:
                self.object_graph(meta, x, y)
        if meta.saver:
            # The loader feeds the filename tensor; it is not a root of its own.
            meta.saver.pop(1, None)

    def tensor_info(self, meta: _Meta, span: tuple[int, int], depth: int) -> None:
        """TensorInfo: name=1, coo_sparse=4 {1, 2, 3: tensor names}, composite_tensor=5
        {components=2: TensorInfo}."""
        if depth > _MAX_NESTING:
            raise ValueError("TensorInfo nested too deeply")
        for f, w, x, y in fields(self.buf, *span):
            if w != 2:
                continue
            if f == 1:
                meta.live.append(("g", _node_name(text(self.buf, x, y))))
            elif f == 4:
                for f2, w2, x2, y2 in fields(self.buf, x, y):
                    if w2 == 2 and f2 in (1, 2, 3):
                        meta.live.append(("g", _node_name(text(self.buf, x2, y2))))
            elif f == 5:
                for comp in self._submessages((x, y), 2):
                    self.tensor_info(meta, comp, depth + 1)

    def object_graph(self, meta: _Meta, a: int, b: int) -> None:
        """SavedObjectGraph.nodes=1: SavedObject.function=6 {concrete_functions=1},
        bare_concrete_function=8 {concrete_function_name=1}: what a TF2 user can call."""
        for node in self._submessages((a, b), 1):
            for f, w, x, y in fields(self.buf, *node):
                if (w == 2 and f == 6) or (w == 2 and f == 8):
                    meta.live.extend(("f", n) for n in self._strings((x, y), 1))

    def graph(self, meta: _Meta, a: int, b: int) -> None:
        """GraphDef: node=1, library=2 (FunctionDefLibrary: function=1, gradient=2)."""
        for f, w, x, y in fields(self.buf, a, b):
            if w != 2:
                continue
            if f == 1:
                self.node(meta, x, y, "")
            elif f == 2:
                for f2, w2, x2, y2 in fields(self.buf, x, y):
                    if f2 == 1 and w2 == 2:
                        self.function(meta, x2, y2)
                    elif f2 == 2 and w2 == 2:  # GradientDef: function_name=1, gradient_func=2
                        names = {
                            g: text(self.buf, p, q)
                            for g, wg, p, q in fields(self.buf, x2, y2)
                            if wg == 2
                        }
                        if 1 in names and 2 in names:
                            meta.gradients.setdefault(names[1], set()).add(names[2])

    def function(self, meta: _Meta, a: int, b: int) -> None:
        """FunctionDef: signature=1 (OpDef name=1), node_def=3."""
        name = ""
        nodes: list[tuple[int, int]] = []
        for f, w, x, y in fields(self.buf, a, b):
            if w != 2:
                continue
            if f == 1:
                for f2, w2, x2, y2 in fields(self.buf, x, y):
                    if f2 == 1 and w2 == 2:
                        name = text(self.buf, x2, y2)
            elif f == 3:
                nodes.append((x, y))
        meta.functions.add(name)
        meta.calls.setdefault(("f", name), set())
        for x, y in nodes:
            self.node(meta, x, y, name)

    def node(self, meta: _Meta, a: int, b: int, function: str) -> None:
        """NodeDef: name=1, op=2, input=3, attr=5 (map<string, AttrValue>)."""
        name = op = ""
        inputs: list[str] = []
        calls: set[str] = set()
        for f, w, x, y in fields(self.buf, a, b):
            if w != 2:
                continue
            if f == 1:
                name = text(self.buf, x, y)
            elif f == 2:
                op = text(self.buf, x, y)
            elif f == 3:
                inputs.append(_node_name(text(self.buf, x, y)))
            elif f == 5:
                value = self._map_value(x, y)
                if value is not None:
                    self.attr_functions(value, calls, 0)
        # A node whose op is a library function calls it; the check happens once all are known.
        calls.add(op)
        place = ("f", function) if function else ("g", name)
        meta.calls.setdefault(place, set()).update(calls)
        if not function:
            meta.inputs[name] = inputs
        meta.ops.append(_Op(op, name, function))

    def attr_functions(self, span: tuple[int, int], out: set[str], depth: int) -> None:
        """Function names in an AttrValue: func=10 and list.func=9 (NameAttrList name=1, attr=2),
        with the attrs of those NameAttrLists in turn."""
        if depth > _MAX_NESTING:
            raise ValueError("function attributes nested too deeply")
        for f, w, x, y in fields(self.buf, *span):
            if w != 2:
                continue
            if f == 10:
                self.name_attr_list((x, y), out, depth)
            elif f == 1:
                for nal in self._submessages((x, y), 9):
                    self.name_attr_list(nal, out, depth)

    def name_attr_list(self, span: tuple[int, int], out: set[str], depth: int) -> None:
        for f, w, x, y in fields(self.buf, *span):
            if w == 2 and f == 1:
                out.add(text(self.buf, x, y))
            elif w == 2 and f == 2:
                value = self._map_value(x, y)
                if value is not None:
                    self.attr_functions(value, out, depth + 1)

    def _map_value(self, a: int, b: int) -> tuple[int, int] | None:
        """The value (field 2) of a map entry message."""
        span = None
        for f, w, x, y in fields(self.buf, a, b):
            if f == 2 and w == 2:
                span = (x, y)
        return span

    def _submessages(self, span: tuple[int, int] | None, number: int) -> list[tuple[int, int]]:
        if span is None:
            return []
        return [(x, y) for f, w, x, y in fields(self.buf, *span) if f == number and w == 2]

    def _strings(self, span: tuple[int, int], number: int) -> list[str]:
        return [text(self.buf, x, y) for x, y in self._submessages(span, number)]


def _reach(meta: _Meta, roots: list[_Place]) -> set[_Place]:
    """Every place that runs when one of ``roots`` runs: main-graph nodes through their inputs,
    and the functions each place calls (with their registered gradients), transitively."""
    seen: set[_Place] = set()
    stack = list(roots)
    while stack:
        place = stack.pop()
        if place in seen:
            continue
        if len(seen) > _MAX_PLACES:
            raise ValueError("graph too large to analyse")
        kind, name = place
        if kind == "g" and name not in meta.inputs:
            continue  # a name the graph does not define
        if kind == "f" and name not in meta.functions:
            continue
        seen.add(place)
        if kind == "g":
            stack.extend(("g", n) for n in meta.inputs[name])
        for fn in meta.calls.get(place, ()):
            if fn in meta.functions:
                stack.append(("f", fn))
                stack.extend(("f", g) for g in meta.gradients.get(fn, ()))
    return seen


def _saver_exempt(meta: _Meta) -> Callable[[_Op], bool]:
    """Which checkpoint ops sit only where the SaverDef puts the saver."""
    save = _reach(meta, [("g", meta.saver[2])] if 2 in meta.saver else [])
    restore = _reach(meta, [("g", meta.saver[3])] if 3 in meta.saver else [])
    live = _reach(meta, meta.live)

    def exempt(op: _Op) -> bool:
        place = ("f", op.function) if op.function else ("g", op.node)
        if place in live:
            return False
        if not meta.saver:
            return _named_checkpointing(op)
        if op.op in _CHECKPOINT_WRITERS:
            return place in save and place not in restore
        return op.op in _CHECKPOINT_READERS and (place in save or place in restore)

    return exempt


def _named_checkpointing(op: _Op) -> bool:
    """A bare GraphDef has no SaverDef to say where its saver is: tf.train.Saver's own scope
    (``save/``, ``save_1/``) in the main graph is the best evidence left."""
    return (
        op.op in _CHECKPOINT_OPS
        and not op.function
        and re.match(r"save(_\d+)?/", op.node) is not None
    )


def _findings(
    ops: list[_Op], ctx: ScanContext, exempt: Callable[[_Op], bool], reported: set[tuple[str, str]]
) -> Iterator[Finding]:
    for op in ops:
        rule = DANGEROUS_OPS.get(op.op)
        if rule is None or exempt(op):
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
    """Walk every graph and function of a SavedModel for file and Python ops. Checkpoint ops are
    standard only in the saver subgraph named by the MetaGraph's SaverDef, and only when no
    signature, init op or object-graph function reaches them."""
    with blob.view() as buf:
        walker = _Walker(buf)
        walker.saved_model()
    reported: set[tuple[str, str]] = set()
    for meta in walker.metas:
        yield from _findings(meta.ops, ctx, _saver_exempt(meta), reported)


def analyze_graphdef(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """A frozen GraphDef (``.pb``): the same op check."""
    with blob.view() as buf:
        walker = _Walker(buf)
        meta = _Meta()
        walker.graph(meta, 0, len(buf))
    yield from _findings(meta.ops, ctx, _named_checkpointing, set())


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
    yield from _findings(ops, ctx, _named_checkpointing, set())


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
