"""ONNX: models built with the real onnx library, walked by our own protobuf reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mlsec.artifact import open_artifact
from mlsec.scan import scan
from tests.unit.scan.formats.helpers import rules


def _model(nodes, *, opsets=(("", 17),), initializers=(), functions=()) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        initializer=list(initializers),
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(d, v) for d, v in opsets],
        functions=list(functions),
    )


def _scan(tmp_path: Path, model: onnx.ModelProto):  # type: ignore[no-untyped-def]
    p = tmp_path / "model.onnx"
    p.write_bytes(model.SerializeToString())
    report = scan(open_artifact(p))
    assert report.files[0].format == "onnx"
    return report


def test_standard_model_is_clean(tmp_path: Path) -> None:
    w = numpy_helper.from_array(np.ones(2, dtype=np.float32), "w")
    nodes = [helper.make_node("Add", ["x", "w"], ["y"])]
    model = _model(nodes, initializers=[w], opsets=(("", 17), ("ai.onnx.ml", 3)))
    onnx.checker.check_model(model)
    assert _scan(tmp_path, model).findings == ()


def test_custom_domain_is_medium(tmp_path: Path) -> None:
    nodes = [helper.make_node("Frobnicate", ["x"], ["y"], domain="com.evil")]
    report = _scan(tmp_path, _model(nodes, opsets=(("", 17), ("com.evil", 1))))
    [f] = report.findings
    assert (f.rule, f.severity, f.symbol) == ("ONNX-CUSTOM-OP", "medium", "com.evil")


def test_custom_op_inside_if_subgraph(tmp_path: Path) -> None:
    inner = helper.make_graph(
        [helper.make_node("Evil", ["x"], ["z"], domain="my.ops")],
        "then",
        [],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])],
    )
    cond = helper.make_node("If", ["c"], ["y"], then_branch=inner, else_branch=inner)
    report = _scan(tmp_path, _model([cond], opsets=(("", 17), ("my.ops", 1))))
    assert "ONNX-CUSTOM-OP" in rules(report)


def test_model_local_function_is_not_custom(tmp_path: Path) -> None:
    fn = helper.make_function(
        "local.fns",
        "Twice",
        ["a"],
        ["b"],
        [helper.make_node("Add", ["a", "a"], ["b"])],
        [helper.make_opsetid("", 17)],
    )
    nodes = [helper.make_node("Twice", ["x"], ["y"], domain="local.fns")]
    model = _model(nodes, opsets=(("", 17), ("local.fns", 1)), functions=[fn])
    assert _scan(tmp_path, model).findings == ()


def test_python_op(tmp_path: Path) -> None:
    nodes = [helper.make_node("PythonOp", ["x"], ["y"], domain="com.microsoft", name="p")]
    report = _scan(tmp_path, _model(nodes, opsets=(("", 17), ("com.microsoft", 1))))
    assert "ONNX-PYTHON-OP" in rules(report)


@pytest.mark.parametrize(
    ("location", "bad"),
    [
        ("weights.bin", False),
        ("sub/dir/weights.bin", False),
        ("../../../../etc/passwd", True),
        ("/etc/shadow", True),
        ("..\\..\\secret", True),
    ],
)
def test_external_data_location(tmp_path: Path, location: str, bad: bool) -> None:
    w = TensorProto()
    w.name = "w"
    w.data_type = TensorProto.FLOAT
    w.dims.append(2)
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", "8")):
        e = w.external_data.add()
        e.key, e.value = k, v
    nodes = [helper.make_node("Add", ["x", "w"], ["y"])]
    report = _scan(tmp_path, _model(nodes, initializers=[w]))
    assert ("ONNX-EXTERNAL-DATA-PATH" in rules(report)) is bad
    if bad:
        assert report.findings[0].severity == "high"


def test_truncated_model_is_parse_error(tmp_path: Path) -> None:
    nodes = [helper.make_node("Frobnicate", ["x"], ["y"], domain="com.evil")]
    data = _model(nodes).SerializeToString()
    p = tmp_path / "model.onnx"
    p.write_bytes(data[: len(data) - 7])
    report = scan(open_artifact(p))
    assert report.files[0].format == "onnx"
    assert "PARSE-ERROR" in rules(report)
