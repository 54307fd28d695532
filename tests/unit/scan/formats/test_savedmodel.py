"""TF SavedModel / GraphDef op checks, on protobuf bytes written by hand (no tensorflow here)."""

from __future__ import annotations

from pathlib import Path

from mlsec.artifact import open_artifact
from mlsec.scan import scan
from tests.unit.scan.formats.helpers import rules
from tests.unit.scan.formats.test_savedmodel_saver import tf2_model


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _ld(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _node(name: str, op: str) -> bytes:
    return _ld(1, name.encode()) + _ld(2, op.encode()) + _ld(4, b"/device:CPU:0")


def _function(name: str, *nodes: bytes) -> bytes:
    return _ld(1, _ld(1, name.encode())) + b"".join(_ld(3, n) for n in nodes)


def _graph(nodes: list[bytes], functions: list[bytes] = ()) -> bytes:  # type: ignore[assignment]
    lib = b"".join(_ld(1, f) for f in functions)
    return b"".join(_ld(1, n) for n in nodes) + (_ld(2, lib) if lib else b"") + _ld(4, b"\x08\x01")


def _saved_model(graph: bytes) -> bytes:
    meta = _ld(1, _ld(1, b"serve")) + _ld(2, graph)
    return b"\x08\x01" + _ld(2, meta)


def _scan(tmp_path: Path, data: bytes, name: str = "saved_model.pb"):  # type: ignore[no-untyped-def]
    d = tmp_path / "m"
    d.mkdir(exist_ok=True)
    (d / name).write_bytes(data)
    return scan(open_artifact(d))


TF2_STANDARD = _graph(
    [_node("x", "Placeholder"), _node("saver_filename", "Placeholder"),
     _node("StatefulPartitionedCall", "StatefulPartitionedCall")],
    [
        _function("__inference__traced_save_123", _node("SaveV2", "SaveV2"),
                  _node("MergeV2Checkpoints", "MergeV2Checkpoints")),
        _function("__inference__traced_restore_456", _node("RestoreV2", "RestoreV2")),
        _function("__inference_serve_7", _node("MatMul", "MatMul"), _node("Relu", "Relu")),
    ],
)  # fmt: skip


def test_standard_savedmodel_is_clean(tmp_path: Path) -> None:
    report = _scan(tmp_path, tf2_model())
    assert report.files[0].format == "tf-savedmodel"
    assert report.findings == ()


def test_tf1_saver_nodes_are_standard(tmp_path: Path) -> None:
    g = _graph([_node("save/SaveV2", "SaveV2"), _node("save/RestoreV2", "RestoreV2")])
    assert _scan(tmp_path, _saved_model(g)).findings == ()


def test_write_file_in_serving_function(tmp_path: Path) -> None:
    g = _graph(
        [_node("x", "Placeholder")],
        [_function("__inference_serve_9", _node("w", "WriteFile"), _node("r", "ReadFile"))],
    )
    report = _scan(tmp_path, _saved_model(g))
    found = {(f.symbol, f.severity) for f in report.findings}
    assert found == {("WriteFile", "critical"), ("ReadFile", "high")}


def test_pyfunc_and_stray_save_in_main_graph(tmp_path: Path) -> None:
    g = _graph([_node("p", "PyFunc"), _node("exfil", "SaveV2"), _node("m", "MatchingFiles")])
    report = _scan(tmp_path, _saved_model(g))
    assert {f.symbol for f in report.findings} == {"PyFunc", "SaveV2", "MatchingFiles"}


def test_frozen_graphdef_pb(tmp_path: Path) -> None:
    g = _graph([_node("c", "ImmutableConst"), _node("y", "Identity")])
    report = _scan(tmp_path, g, "frozen.pb")
    assert report.files[0].format == "protobuf"
    assert [f.symbol for f in report.findings] == ["ImmutableConst"]


def test_truncated_savedmodel_is_parse_error(tmp_path: Path) -> None:
    data = _saved_model(TF2_STANDARD)
    report = _scan(tmp_path, data[:-9])
    assert "PARSE-ERROR" in rules(report)


def test_keras_metadata_lambda(tmp_path: Path) -> None:
    import json

    lam = {
        "class_name": "Lambda",
        "config": {"name": "l", "function": ["4wEAAAAA", None, None], "function_type": "lambda"},
    }
    objs = [
        _ld(1, b"\x08\x01" + _ld(2, b"root.layer-0") + _ld(4, json.dumps(m).encode()))
        for m in ({"class_name": "Dense", "config": {"name": "d"}}, lam)
    ]
    d = tmp_path / "m"
    d.mkdir()
    (d / "saved_model.pb").write_bytes(tf2_model())
    (d / "keras_metadata.pb").write_bytes(b"".join(objs))
    report = scan(open_artifact(d))
    assert [(f.file, f.rule) for f in report.findings] == [("keras_metadata.pb", "KERAS-LAMBDA")]


def test_text_format_savedmodel(tmp_path: Path) -> None:
    pbtxt = """saved_model_schema_version: 1
meta_graphs {
  graph_def {
    node { name: "x" op: "Placeholder" }
    node { name: "save/SaveV2" op: "SaveV2" }
    node { name: "steal" op: "ReadFile" input: "x" }
  }
}
"""
    report = _scan(tmp_path, pbtxt.encode(), "saved_model.pbtxt")
    assert [(f.symbol, f.message.split("'")[1]) for f in report.findings] == [("ReadFile", "steal")]
