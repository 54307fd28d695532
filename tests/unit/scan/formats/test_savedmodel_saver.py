# ruff: noqa: E501  (graphs laid out one node per line, as TF prints them)
"""SavedModel checkpoint ops judged by where they sit: the saver subgraph named by the SaverDef is
standard, what signatures, init ops and object-graph functions reach is not.

tensorflow is not installed here, so SavedModels are encoded from bytes with the field numbers of
TF's own protos (saved_model.proto, meta_graph.proto, saver.proto, graph.proto, function.proto,
node_def.proto, attr_value.proto, saved_object_graph.proto) and laid out the way TF 2.x
(``tf.saved_model.save``) and TF 1.x (``tf.compat.v1.saved_model.Builder`` with a Saver) write them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlsec.artifact import open_artifact
from mlsec.scan import ScanReport, Severity, scan


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _ld(field: int, payload: bytes | str) -> bytes:
    raw = payload.encode() if isinstance(payload, str) else payload
    return _varint(field << 3 | 2) + _varint(len(raw)) + raw


def _vi(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _entry(key: str, value: bytes) -> bytes:
    return _ld(1, key) + _ld(2, value)


def node(name: str, op: str, *inputs: str, f: str | None = None) -> bytes:
    """NodeDef: name=1, op=2, input=3, device=4, attr=5 (``f`` is a func AttrValue, field 10)."""
    out = _ld(1, name) + _ld(2, op) + b"".join(_ld(3, i) for i in inputs)
    if f is not None:
        out += _ld(5, _entry("f", _ld(10, _ld(1, f))))
        out += _ld(5, _entry("config_proto", _ld(2, b"\n\x07\n\x03CPU\x10\x01")))
    out += _ld(5, _entry("dtype", _vi(6, 1)))
    return out


def function(name: str, *nodes: bytes, args: tuple[str, ...] = ()) -> bytes:
    """FunctionDef: signature=1 (OpDef: name=1, input_arg=2 {name=1}), node_def=3, ret=4."""
    sig = _ld(1, name) + b"".join(_ld(2, _ld(1, a) + _vi(3, 7)) for a in args)
    return _ld(1, sig) + b"".join(_ld(3, n) for n in nodes) + _ld(4, _entry("identity", b"x"))


def graph(nodes: list[bytes], functions: list[bytes]) -> bytes:
    """GraphDef: node=1, library=2 (function=1), versions=4 (producer=1)."""
    lib = b"".join(_ld(1, f) for f in functions)
    return b"".join(_ld(1, n) for n in nodes) + _ld(2, lib) + _ld(4, _vi(1, 1645))


def tensor_info(name: str) -> bytes:
    return _ld(1, name) + _vi(2, 1) + _ld(3, _ld(2, _vi(1, -1 & 0xFFFFFFFFFFFFFFFF)))


def signature(outputs: dict[str, str], inputs: dict[str, str] | None = None) -> bytes:
    """SignatureDef: inputs=1, outputs=2 (map<string, TensorInfo>), method_name=3."""
    out = b"".join(_ld(1, _entry(k, tensor_info(v))) for k, v in (inputs or {}).items())
    out += b"".join(_ld(2, _entry(k, tensor_info(v))) for k, v in outputs.items())
    return out + _ld(3, "tensorflow/serving/predict")


def meta_graph(
    g: bytes,
    *,
    saver: tuple[str, str, str] | None,
    signatures: dict[str, bytes],
    collections: dict[str, list[str]] | None = None,
    concrete: list[str] = (),  # type: ignore[assignment]
    tags: tuple[str, ...] = ("serve",),
    aliases: dict[str, str] | None = None,
) -> bytes:
    """MetaGraphDef: meta_info_def=1 (tags=4, tensorflow_version=5), graph_def=2, saver_def=3
    (filename_tensor_name=1, save_tensor_name=2, restore_op_name=3, max_to_keep=4, sharded=5,
    version=7), collection_def=4 (node_list=1 {value=1}), signature_def=5, object_graph_def=7
    (nodes=1: SavedObject user_object=4, function=6 {concrete_functions=1})."""
    info = b"".join(_ld(4, t) for t in tags) + _ld(5, "2.16.1") + _ld(6, "v2.16.1-0-g5bc9d26649c")
    info += b"".join(_ld(8, _entry(fn, alias)) for fn, alias in (aliases or {}).items())
    out = _ld(1, info) + _ld(2, g)
    if saver is not None:
        fn, save, restore = saver
        out += _ld(
            3, _ld(1, fn) + _ld(2, save) + _ld(3, restore) + _vi(4, 5) + _vi(5, 1) + _vi(7, 2)
        )
    for name, values in (collections or {}).items():
        out += _ld(4, _entry(name, _ld(1, b"".join(_ld(1, v) for v in values))))
    for name, sig in signatures.items():
        out += _ld(5, _entry(name, sig))
    objects = _ld(1, _ld(4, _ld(1, "_generic_user_object")))
    objects += b"".join(_ld(1, _ld(6, _ld(1, c))) for c in concrete)
    return out + _ld(7, objects)


def saved_model(*metas: bytes) -> bytes:
    """SavedModel: saved_model_schema_version=1, meta_graphs=2."""
    return _vi(1, 1) + b"".join(_ld(2, m) for m in metas)


def traced_save(name: str, *extra: bytes) -> bytes:
    """The body of TF2's ``_traced_save`` (tensorflow/python/checkpoint/functional_saver.py)."""
    return function(
        name,
        node("StaticRegexFullMatch", "StaticRegexFullMatch", "file_prefix"),
        node("Const", "Const"),
        node("Const_1", "Const"),
        node("Select", "Select", "StaticRegexFullMatch:output:0", "Const:output:0", "Const_1:output:0"),
        node("StringJoin", "StringJoin", "file_prefix", "Select:output:0"),
        node("num_shards", "Const"),
        node("ShardedFilename/shard", "Const"),
        node("ShardedFilename", "ShardedFilename", "StringJoin:output:0", "ShardedFilename/shard:output:0", "num_shards:output:0"),
        node("SaveV2/tensor_names", "Const"),
        node("SaveV2/shape_and_slices", "Const"),
        node("SaveV2", "SaveV2", "ShardedFilename:filename:0", "SaveV2/tensor_names:output:0", "SaveV2/shape_and_slices:output:0", "savev2_variable_read_readvariableop"),
        node("MergeV2Checkpoints/checkpoint_prefixes", "Pack", "ShardedFilename:filename:0", "^SaveV2"),
        node("MergeV2Checkpoints", "MergeV2Checkpoints", "MergeV2Checkpoints/checkpoint_prefixes:output:0", "file_prefix"),
        node("Identity", "Identity", "file_prefix", "^MergeV2Checkpoints"),
        node("NoOp", "NoOp", "^MergeV2Checkpoints"),
        *extra,
        args=("file_prefix", "savev2_variable_read_readvariableop", "savev2_const"),
    )  # fmt: skip


def traced_restore(name: str, *extra: bytes) -> bytes:
    return function(
        name,
        node("RestoreV2/tensor_names", "Const"),
        node("RestoreV2/shape_and_slices", "Const"),
        node("RestoreV2", "RestoreV2", "file_prefix", "RestoreV2/tensor_names:output:0", "RestoreV2/shape_and_slices:output:0"),
        node("Identity", "Identity", "RestoreV2:tensors:0"),
        node("AssignVariableOp", "AssignVariableOp", "assignvariableop_variable", "Identity:output:0"),
        node("NoOp_1", "NoOp"),
        node("Identity_1", "Identity", "file_prefix", "^AssignVariableOp", "^NoOp_1"),
        *extra,
        args=("file_prefix", "assignvariableop_variable"),
    )  # fmt: skip


def tf2_model(
    *,
    serve_extra: tuple[bytes, ...] = (),
    save_extra: tuple[bytes, ...] = (),
    restore_extra: tuple[bytes, ...] = (),
    more_functions: tuple[bytes, ...] = (),
    more_nodes: tuple[bytes, ...] = (),
    concrete: tuple[str, ...] = ("__inference___call___20",),
    aliases: dict[str, str] | None = None,
) -> bytes:
    """``tf.saved_model.save`` of a tf.Module with one variable and a ``__call__`` signature."""
    g = graph(
        [
            node("Variable", "VarHandleOp"),
            node("Variable/Read/ReadVariableOp", "ReadVariableOp", "Variable"),
            node("Const", "Const"),
            node("NoOp", "NoOp"),
            node("serving_default_x", "Placeholder"),
            node("StatefulPartitionedCall", "StatefulPartitionedCall", "serving_default_x", "Variable", f="__inference_signature_wrapper_28"),
            node("saver_filename", "Placeholder"),
            node("StatefulPartitionedCall_1", "StatefulPartitionedCall", "saver_filename", "Variable/Read/ReadVariableOp", "Const", f="__inference__traced_save_59"),
            node("StatefulPartitionedCall_2", "StatefulPartitionedCall", "saver_filename", "Variable", f="__inference__traced_restore_72"),
            *more_nodes,
        ],
        [
            function("__inference___call___20", node("ReadVariableOp", "ReadVariableOp", "readvariableop_resource"), node("mul", "Mul", "x", "ReadVariableOp:value:0"), *serve_extra, args=("x", "readvariableop_resource")),
            function("__inference_signature_wrapper_28", node("StatefulPartitionedCall", "StatefulPartitionedCall", "x", "unknown", f="__inference___call___20"), args=("x", "unknown")),
            traced_save("__inference__traced_save_59", *save_extra),
            traced_restore("__inference__traced_restore_72", *restore_extra),
            *more_functions,
        ],
    )  # fmt: skip
    meta = meta_graph(
        g,
        saver=("saver_filename:0", "StatefulPartitionedCall_1:0", "StatefulPartitionedCall_2"),
        signatures={
            "serving_default": signature({"output_0": "StatefulPartitionedCall:0"}, {"x": "serving_default_x:0"}),
            "__saved_model_init_op": signature({"__saved_model_init_op": "NoOp"}),
        },
        concrete=list(concrete),
        aliases=aliases,
    )  # fmt: skip
    return saved_model(meta)


def tf1_model(*, extra_nodes: tuple[bytes, ...] = (), init: tuple[str, ...] = ()) -> bytes:
    """``tf.compat.v1.saved_model.Builder`` with a sharded ``tf.compat.v1.train.Saver``."""
    g = graph(
        [
            node("x", "Placeholder"),
            node("w", "VariableV2"),
            node("w/read", "Identity", "w"),
            node("y", "MatMul", "x", "w/read"),
            node("init", "NoOp", "^w/Assign"),
            node("w/Assign", "Assign", "w", "w/initial_value"),
            node("w/initial_value", "Const"),
            node("save/filename/input", "Const"),
            node("save/filename", "PlaceholderWithDefault", "save/filename/input"),
            node("save/Const", "PlaceholderWithDefault", "save/filename"),
            node("save/StringJoin/inputs_1", "Const"),
            node("save/StringJoin", "StringJoin", "save/Const", "save/StringJoin/inputs_1"),
            node("save/num_shards", "Const"),
            node("save/ShardedFilename/shard", "Const"),
            node("save/ShardedFilename", "ShardedFilename", "save/StringJoin", "save/ShardedFilename/shard", "save/num_shards"),
            node("save/SaveV2/tensor_names", "Const"),
            node("save/SaveV2/shape_and_slices", "Const"),
            node("save/SaveV2", "SaveV2", "save/ShardedFilename", "save/SaveV2/tensor_names", "save/SaveV2/shape_and_slices", "w"),
            node("save/control_dependency", "Identity", "save/ShardedFilename", "^save/SaveV2"),
            node("save/MergeV2Checkpoints/checkpoint_prefixes", "Pack", "save/ShardedFilename", "^save/control_dependency"),
            node("save/MergeV2Checkpoints", "MergeV2Checkpoints", "save/MergeV2Checkpoints/checkpoint_prefixes", "save/Const"),
            node("save/Identity", "Identity", "save/Const", "^save/MergeV2Checkpoints", "^save/control_dependency"),
            node("save/RestoreV2/tensor_names", "Const"),
            node("save/RestoreV2/shape_and_slices", "Const"),
            node("save/RestoreV2", "RestoreV2", "save/Const", "save/RestoreV2/tensor_names", "save/RestoreV2/shape_and_slices"),
            node("save/Assign", "Assign", "w", "save/RestoreV2"),
            node("save/restore_shard", "NoOp", "^save/Assign"),
            node("save/restore_all", "NoOp", "^save/restore_shard"),
            *extra_nodes,
        ],
        [],
    )  # fmt: skip
    meta = meta_graph(
        g,
        saver=("save/Const:0", "save/Identity:0", "save/restore_all"),
        signatures={"serving_default": signature({"y": "y:0"}, {"x": "x:0"})},
        collections={"variables": [], "saved_model_main_op": list(init)} if init else None,
    )
    return saved_model(meta)


def _scan(tmp_path: Path, data: bytes) -> ScanReport:
    d = tmp_path / "model"
    d.mkdir()
    (d / "saved_model.pb").write_bytes(data)
    (d / "variables").mkdir()
    (d / "variables" / "variables.index").write_bytes(b"\x00" * 16)
    return scan(open_artifact(d / "saved_model.pb"))


def _found(report: ScanReport) -> set[tuple[str | None, str]]:
    return {(f.symbol, str(f.severity)) for f in report.findings}


def test_tf2_savedmodel_with_its_saver_is_clean(tmp_path: Path) -> None:
    report = _scan(tmp_path, tf2_model())
    assert report.files[0].format == "tf-savedmodel"
    assert report.findings == ()


def test_tf1_sharded_saver_is_clean(tmp_path: Path) -> None:
    assert _scan(tmp_path, tf1_model(init=("init",))).findings == ()


def test_write_file_in_restore_function_runs_at_load(tmp_path: Path) -> None:
    evil = node("w", "WriteFile", "file_prefix", "RestoreV2:tensors:0")
    assert _found(_scan(tmp_path, tf2_model(restore_extra=(evil,)))) == {("WriteFile", "critical")}


def test_checkpoint_writer_in_restore_subgraph_is_flagged(tmp_path: Path) -> None:
    # MergeV2Checkpoints deletes directories; in the restore function it runs when TF1 loads.
    evil = node("m", "MergeV2Checkpoints", "file_prefix", "file_prefix")
    assert _found(_scan(tmp_path, tf2_model(restore_extra=(evil,)))) == {
        ("MergeV2Checkpoints", "high")
    }


def test_signature_that_reaches_the_save_function(tmp_path: Path) -> None:
    call = node("s", "StatefulPartitionedCall", "x", f="__inference__traced_save_59")
    found = _found(_scan(tmp_path, tf2_model(serve_extra=(call,))))
    assert ("SaveV2", "high") in found and ("MergeV2Checkpoints", "high") in found


def test_read_file_two_calls_below_the_signature(tmp_path: Path) -> None:
    helper = function("__inference_helper_5", node("r", "ReadFile", "path"), args=("path",))
    # Called by op name, the other way a FunctionDef is invoked.
    call = node("h", "__inference_helper_5", "x")
    report = _scan(tmp_path, tf2_model(serve_extra=(call,), more_functions=(helper,)))
    assert _found(report) == {("ReadFile", "high")}


@pytest.mark.parametrize("op", ["PyFunc", "EagerPyFunc", "PyFuncStateless"])
def test_python_callbacks_are_critical_even_in_the_saver(tmp_path: Path, op: str) -> None:
    evil = node("p", op, "file_prefix")
    assert _found(_scan(tmp_path, tf2_model(save_extra=(evil,)))) == {(op, "critical")}


def test_checkpoint_op_outside_the_saver_is_flagged(tmp_path: Path) -> None:
    # Named like the saver, but the SaverDef does not reach it: names are not evidence.
    stray = node("save/SaveV2_1", "SaveV2", "saver_filename", "Const")
    orphan = function("__inference__traced_save_99", node("SaveV2", "SaveV2", "p"), args=("p",))
    report = _scan(tmp_path, tf2_model(more_nodes=(stray,), more_functions=(orphan,)))
    assert {(f.symbol, f.message.split("'")[1]) for f in report.findings} == {
        ("SaveV2", "save/SaveV2_1"),
        ("SaveV2", "SaveV2"),
    }


def test_object_graph_function_sharing_the_saver_is_flagged(tmp_path: Path) -> None:
    # A concrete function a TF2 user can call directly is live, even if the saver calls it too.
    report = _scan(tmp_path, tf2_model(concrete=("__inference__traced_save_59",)))
    assert ("SaveV2", "high") in _found(report)


def test_tf1_init_op_reaching_file_ops(tmp_path: Path) -> None:
    extra = (
        node("steal", "ReadFile", "save/Const"),
        node("drop", "WriteFile", "save/Const", "steal"),
        node("main_op", "NoOp", "^drop", "^init"),
    )
    found = _found(_scan(tmp_path, tf1_model(extra_nodes=extra, init=("main_op",))))
    assert found == {("ReadFile", "high"), ("WriteFile", "critical")}


def test_tf1_restore_op_reaching_a_writer(tmp_path: Path) -> None:
    # restore_all gains a control input on a MergeV2Checkpoints: the TF1 loader runs it on load.
    extra = (node("save/restore_all", "NoOp", "^save/restore_shard", "^save/MergeV2Checkpoints"),)
    data = tf1_model(extra_nodes=extra)
    found = _found(_scan(tmp_path, data))
    assert ("MergeV2Checkpoints", "high") in found


def test_every_meta_graph_is_judged(tmp_path: Path) -> None:
    clean = tf2_model()
    evil_graph = graph([node("w", "WriteFile", "a", "b")], [])
    evil = meta_graph(evil_graph, saver=None, signatures={}, tags=("train",))
    data = clean + _ld(2, evil)
    assert _found(_scan(tmp_path, data)) == {("WriteFile", "critical")}


def test_deeply_nested_function_attributes_fail_closed(tmp_path: Path) -> None:
    value = _ld(10, _ld(1, "f0"))
    for i in range(200):
        value = _ld(10, _ld(1, f"f{i}") + _ld(2, _entry("inner", value)))
    bad = _ld(1, "n") + _ld(2, "PartitionedCall") + _ld(5, _entry("f", value))
    g = graph([bad], [])
    report = _scan(tmp_path, saved_model(meta_graph(g, saver=None, signatures={})))
    assert {f.rule for f in report.findings} == {"PARSE-ERROR"}
    assert all(f.severity.at_least(Severity.HIGH) for f in report.findings)
    assert "nested too deeply" in report.findings[0].message


def test_without_a_saver_def_a_signature_still_decides(tmp_path: Path) -> None:
    g = graph(
        [node("x", "Placeholder"), node("save/MergeV2Checkpoints", "MergeV2Checkpoints", "x")],
        [],
    )
    sig = {"serving_default": signature({"y": "save/MergeV2Checkpoints"})}
    report = _scan(tmp_path, saved_model(meta_graph(g, saver=None, signatures=sig)))
    assert _found(report) == {("MergeV2Checkpoints", "high")}


def test_function_alias_makes_a_saver_function_live(tmp_path: Path) -> None:
    # MetaInfoDef.function_aliases (field 8) exposes a function to users by name.
    report = _scan(tmp_path, tf2_model(aliases={"__inference__traced_restore_72": "restore"}))
    assert _found(report) == {("RestoreV2", "high")}
