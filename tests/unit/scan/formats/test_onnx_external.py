"""ONNX external data: every way an entry can make a loader read outside the model directory.

Models are written with the real ``onnx`` package (``onnx.save(..., save_as_external_data=True)``
for the benign ones); hostile entries are then edited into the TensorProto the way an attacker
would, with the same protobuf library.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mlsec.artifact import open_artifact
from mlsec.scan import ScanReport, scan


def _graph(
    initializers: list[TensorProto], nodes: list[onnx.NodeProto] | None = None
) -> onnx.GraphProto:
    return helper.make_graph(
        nodes or [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
        initializer=initializers,
    )


def _weights(name: str = "w") -> TensorProto:
    return numpy_helper.from_array(np.arange(256, dtype=np.float32).reshape(16, 16), name)


def _save_with_external(d: Path, model: onnx.ModelProto, **kw: object) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    p = d / "model.onnx"
    onnx.save(model, str(p), save_as_external_data=True, size_threshold=0, **kw)  # type: ignore[arg-type]
    return p


def _point(tensor: TensorProto, *entries: tuple[str, str]) -> TensorProto:
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    del tensor.external_data[:]
    for k, v in entries:
        e = tensor.external_data.add()
        e.key, e.value = k, v
    return tensor


def _write(d: Path, model: onnx.ModelProto) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    p = d / "model.onnx"
    p.write_bytes(model.SerializeToString())
    return p


def _scan(p: Path) -> ScanReport:
    report = scan(open_artifact(p))
    assert report.files[0].format == "onnx"
    return report


def _path_findings(report: ScanReport) -> list[str]:
    return [f.message for f in report.findings if f.rule == "ONNX-EXTERNAL-DATA-PATH"]


def test_onnx_saved_external_data_is_clean(tmp_path: Path) -> None:
    model = helper.make_model(_graph([_weights()]))
    p = _save_with_external(
        tmp_path / "m", model, all_tensors_to_one_file=True, location="model.onnx.data"
    )
    assert (tmp_path / "m" / "model.onnx.data").stat().st_size == 1024
    report = scan(open_artifact(tmp_path / "m"))
    assert report.findings == ()
    # The same directory as the real loader sees it.
    loaded = onnx.load(str(p))
    assert numpy_helper.to_array(loaded.graph.initializer[0]).shape == (16, 16)


def test_one_file_per_tensor_in_subgraph_attributes_is_clean(tmp_path: Path) -> None:
    then = helper.make_graph(
        [helper.make_node("Constant", [], ["c"], value=_weights("c"))],
        "then",
        [],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [16, 16])],
    )
    nodes = [
        helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=then),
    ]
    model = helper.make_model(_graph([_weights()], nodes))
    _save_with_external(
        tmp_path / "m", model, all_tensors_to_one_file=False, convert_attribute=True
    )
    assert len(list((tmp_path / "m").iterdir())) == 3  # the model, w and c
    assert scan(open_artifact(tmp_path / "m")).findings == ()


ESCAPES = [
    "../../../../etc/passwd",
    "sub/../../secret.bin",
    "/etc/shadow",
    "\\\\server\\share\\w.bin",
    "//server/share/w.bin",
    "C:\\Windows\\win.ini",
    "C:win.ini",
    "..\\..\\secret",
    "sub\\..\\..\\secret",
    "weights.bin:hidden",
    "w.bin\x00../../../etc/passwd",
    "*/_ORT_MEM_ADDR_/*",
    "#../inmemory",
    "~/.ssh/id_rsa",
    "... /secret",
    "sub/CON",
    "nul ",
    "",
]


@pytest.mark.parametrize("location", ESCAPES)
def test_escaping_locations_are_high(tmp_path: Path, location: str) -> None:
    w = _point(_weights(), ("location", location), ("offset", "0"), ("length", "1024"))
    report = _scan(_write(tmp_path / "m", helper.make_model(_graph([w]))))
    assert [(f.rule, f.severity) for f in report.findings] == [("ONNX-EXTERNAL-DATA-PATH", "high")]


def test_tensor_named_files_are_fine(tmp_path: Path) -> None:
    # one file per tensor, named after it, as onnx and torch.onnx write them
    d = tmp_path / "m"
    d.mkdir()
    tensors = []
    for name in (
        "aux.0.weight",
        "encoder.layer.0.attention.self.query.weight",
        "onnx__MatMul_1234",
    ):
        (d / name).write_bytes(b"\x00" * 1024)
        tensors.append(
            _point(_weights(name), ("location", name), ("offset", "0"), ("length", "1024"))
        )
    assert _scan(_write(d, helper.make_model(_graph(tensors)))).findings == ()


def test_symlink_inside_the_model_directory_pointing_out(tmp_path: Path) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\x00" * 1024)
    d = tmp_path / "m"
    d.mkdir()
    os.symlink(secret, d / "weights.bin")
    w = _point(_weights(), ("location", "weights.bin"))
    report = _scan(_write(d, helper.make_model(_graph([w]))))
    assert len(_path_findings(report)) == 1
    assert "symlink" in _path_findings(report)[0]


def test_symlinked_parent_directory_pointing_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "w.bin").write_bytes(b"\x00" * 1024)
    d = tmp_path / "m"
    d.mkdir()
    os.symlink(outside, d / "data")
    w = _point(_weights(), ("location", "data/w.bin"))
    assert len(_path_findings(_scan(_write(d, helper.make_model(_graph([w])))))) == 1


def test_symlink_that_stays_inside_is_fine(tmp_path: Path) -> None:
    d = tmp_path / "m"
    (d / "blobs").mkdir(parents=True)
    (d / "blobs" / "abc").write_bytes(b"\x00" * 1024)
    os.symlink("blobs/abc", d / "weights.bin")
    w = _point(_weights(), ("location", "weights.bin"), ("offset", "0"), ("length", "1024"))
    assert _scan(_write(d, helper.make_model(_graph([w])))).findings == ()


def test_hard_link_is_medium(tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    (tmp_path / "elsewhere.bin").write_bytes(b"\x00" * 1024)
    os.link(tmp_path / "elsewhere.bin", d / "weights.bin")
    w = _point(_weights(), ("location", "weights.bin"))
    report = _scan(_write(d, helper.make_model(_graph([w]))))
    assert [(f.rule, f.severity) for f in report.findings] == [
        ("ONNX-EXTERNAL-DATA-PATH", "medium")
    ]


@pytest.mark.parametrize(("offset", "length"), [("2048", None), ("0", "4096"), ("1000", "100")])
def test_offset_or_length_beyond_the_file(tmp_path: Path, offset: str, length: str | None) -> None:
    d = tmp_path / "m"
    d.mkdir()
    (d / "weights.bin").write_bytes(b"\x00" * 1024)
    entries = [("location", "weights.bin"), ("offset", offset)]
    if length is not None:
        entries.append(("length", length))
    w = _point(_weights(), *entries)
    report = _scan(_write(d, helper.make_model(_graph([w]))))
    assert [f.rule for f in report.findings] == ["ONNX-EXTERNAL-DATA-BOUNDS"]


@pytest.mark.parametrize("value", ["-1", "+8", " 8", "1_024", "٣", "99999999999999999999999"])
def test_offsets_loaders_parse_differently(tmp_path: Path, value: str) -> None:
    d = tmp_path / "m"
    d.mkdir()
    (d / "weights.bin").write_bytes(b"\x00" * 1024)
    w = _point(_weights(), ("location", "weights.bin"), ("offset", value))
    report = _scan(_write(d, helper.make_model(_graph([w]))))
    assert {(f.rule, f.severity) for f in report.findings} == {("ONNX-EXTERNAL-DATA-KEY", "medium")}


@pytest.mark.parametrize(
    "entries",
    [
        [("location", "weights.bin"), ("basepath", "/etc")],  # re-bases the location
        [("location", "weights.bin"), ("location", "../../etc/passwd")],  # last one wins in onnx
        [("location", "weights.bin"), ("__class__", "x")],  # CVE-2026-34445 attribute injection
        [("offset", "0")],  # no location at all
    ],
)
def test_other_keys_that_change_what_is_read(
    tmp_path: Path, entries: list[tuple[str, str]]
) -> None:
    d = tmp_path / "m"
    d.mkdir()
    (d / "weights.bin").write_bytes(b"\x00" * 1024)
    w = _point(_weights(), *entries)
    report = _scan(_write(d, helper.make_model(_graph([w]))))
    assert any(f.severity == "high" for f in report.findings), report.findings


def _evil(name: str = "t") -> TensorProto:
    return _point(_weights(name), ("location", "../../../etc/passwd"))


def test_escape_in_a_constant_attribute(tmp_path: Path) -> None:
    nodes = [helper.make_node("Constant", [], ["y"], value=_evil())]
    assert len(_path_findings(_scan(_write(tmp_path, helper.make_model(_graph([], nodes)))))) == 1


def test_escape_in_a_sparse_initializer(tmp_path: Path) -> None:
    indices = numpy_helper.from_array(np.array([0, 3], dtype=np.int64), "i")
    sparse = helper.make_sparse_tensor(_evil("v"), indices, [16])
    g = _graph([])
    g.sparse_initializer.append(sparse)
    assert len(_path_findings(_scan(_write(tmp_path, helper.make_model(g))))) == 1


def test_escape_in_a_sparse_attribute(tmp_path: Path) -> None:
    indices = numpy_helper.from_array(np.array([0, 3], dtype=np.int64), "i")
    sparse = helper.make_sparse_tensor(_evil("v"), indices, [16])
    nodes = [helper.make_node("Constant", [], ["y"], sparse_value=sparse)]
    assert len(_path_findings(_scan(_write(tmp_path, helper.make_model(_graph([], nodes)))))) == 1


def test_escape_in_a_loop_body_inside_an_if_branch(tmp_path: Path) -> None:
    body = helper.make_graph(
        [helper.make_node("Constant", [], ["c"], value=_evil())],
        "body",
        [],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [16, 16])],
    )
    loop = helper.make_node("Loop", ["n", "cond"], ["y"], body=body)
    branch = helper.make_graph(
        [loop], "then", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    )
    nodes = [helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch)]
    # then and else each carry one: both reported
    assert len(_path_findings(_scan(_write(tmp_path, helper.make_model(_graph([], nodes)))))) == 2


def test_escape_in_a_model_local_function(tmp_path: Path) -> None:
    fn = helper.make_function(
        "local",
        "F",
        [],
        ["c"],
        [helper.make_node("Constant", [], ["c"], value=_evil())],
        [helper.make_opsetid("", 17)],
    )
    nodes = [helper.make_node("F", [], ["y"], domain="local")]
    model = helper.make_model(
        _graph([], nodes),
        functions=[fn],
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
    )
    assert len(_path_findings(_scan(_write(tmp_path, model)))) == 1


def test_tensor_list_attribute(tmp_path: Path) -> None:
    node = helper.make_node("Custom", [], ["y"], domain="")
    node.attribute.append(helper.make_attribute("ts", [_evil("a"), _evil("b")]))
    assert len(_path_findings(_scan(_write(tmp_path, helper.make_model(_graph([], [node])))))) == 2


def _ld(field: int, payload: bytes) -> bytes:
    n, out = len(payload), bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(((field << 3) | 2,)) + bytes(out) + payload


def test_subgraphs_nested_too_deep_fail_closed(tmp_path: Path) -> None:
    # Deeper than the protobuf library itself will parse (upb stops at 100 message levels), so
    # written as bytes: GraphProto.node=1 -> NodeProto.attribute=5 -> AttributeProto.g=6.
    inner = helper.make_graph(
        [helper.make_node("Constant", [], ["c"], value=_evil())], "g0", [], []
    )
    g = inner.SerializeToString()
    for _ in range(80):
        attr = _ld(1, b"then_branch") + _ld(6, g) + b"\xa0\x01\x05"  # type=20: GRAPH
        g = _ld(1, _ld(4, b"If") + _ld(5, attr))
    model = b"\x08\x08" + _ld(7, g) + _ld(8, b"\x10\x11")
    (tmp_path / "model.onnx").write_bytes(model)
    report = _scan(tmp_path / "model.onnx")
    assert [f.rule for f in report.findings] == ["PARSE-ERROR"]
    assert report.findings[0].severity == "high"
    assert "nested too deeply" in report.findings[0].message


def test_inside_an_archive_names_are_still_judged(tmp_path: Path) -> None:
    import zipfile

    w = _point(_weights(), ("location", "C:\\secret"))
    with zipfile.ZipFile(tmp_path / "bundle.zip", "w") as z:
        z.writestr("model.onnx", helper.make_model(_graph([w])).SerializeToString())
    report = scan(open_artifact(tmp_path / "bundle.zip"))
    assert [(f.rule, f.member) for f in report.findings] == [
        ("ONNX-EXTERNAL-DATA-PATH", "model.onnx")
    ]
