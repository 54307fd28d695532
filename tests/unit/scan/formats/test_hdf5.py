"""Legacy Keras .h5 models written with h5py the way tf.keras / Keras 2 writes them (root
attributes ``model_config`` and ``training_config`` holding JSON, weights under
``model_weights``); the config is read structurally, so key order and decoys change nothing."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from mlsec.artifact import open_artifact
from mlsec.scan import ScanReport, scan
from tests.unit.scan.formats.helpers import rules

LAMBDA = {
    "class_name": "Lambda",
    "config": {
        "name": "lambda",
        "trainable": True,
        "dtype": "float32",
        "function": [
            "4wEAAAAAAAAAAAAAAAEAAAACAAAAQwAAAHMIAAAAfABkARQAUwApAk7pAgAAAKkA",
            None,
            None,
        ],
        "function_type": "lambda",
        "module": "__main__",
        "output_shape": None,
        "output_shape_type": "raw",
        "output_shape_module": None,
        "arguments": {},
    },
}
DENSE = {
    "class_name": "Dense",
    "config": {
        "name": "dense",
        "trainable": True,
        "dtype": "float32",
        "units": 2,
        "activation": "relu",
        "use_bias": True,
        "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
        "bias_initializer": {"class_name": "Zeros", "config": {}},
        "kernel_regularizer": None,
    },
}
TRAINING = {
    "loss": "mse",
    "metrics": [[{"class_name": "MeanMetricWrapper", "config": {"name": "mae", "fn": "mae"}}]],
    "weighted_metrics": None,
    "loss_weights": None,
    "optimizer_config": {"class_name": "Adam", "config": {"name": "Adam", "learning_rate": 0.001}},
}


def _sequential(*layers: dict[str, Any]) -> dict[str, Any]:
    inp = {
        "class_name": "InputLayer",
        "config": {"batch_input_shape": [None, 2], "dtype": "float32", "name": "in"},
    }
    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": [inp, *layers]}}


def _h5(
    target: Path | io.BytesIO,
    model_config: object,
    training: object = TRAINING,
    **kw: Any,
) -> None:
    # tf.keras saving/legacy/hdf5_format.py: json.dumps(v, default=...).encode("utf8")
    with h5py.File(target, "w", **kw) as f:
        f.attrs["backend"] = "tensorflow"
        f.attrs["keras_version"] = "2.15.0"
        if model_config is not None:
            f.attrs["model_config"] = (
                json.dumps(model_config).encode()
                if isinstance(model_config, dict)
                else model_config
            )
        if training is not None:
            f.attrs["training_config"] = json.dumps(training).encode()
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = np.array([b"dense"])
        d = g.create_group("dense")
        d.attrs["weight_names"] = np.array([b"dense/kernel:0"])
        d.create_dataset("dense/kernel:0", data=np.ones((2, 2), np.float32))


def _scan(tmp_path: Path, model_config: object, name: str = "model.h5", **kw: Any) -> ScanReport:
    p = tmp_path / name
    _h5(p, model_config, **kw)
    return scan(open_artifact(p))


def _reorder(node: Any) -> Any:
    """The same config with "config" before "class_name" in every object (json.loads does not
    care about key order; a byte search for '{"class_name"' does)."""
    if isinstance(node, list):
        return [_reorder(v) for v in node]
    if isinstance(node, dict):
        return dict(
            sorted(((k, _reorder(v)) for k, v in node.items()), key=lambda kv: kv[0] != "config")
        )
    return node


def test_keras2_model_is_clean(tmp_path: Path) -> None:
    report = _scan(tmp_path, _sequential(DENSE))
    assert report.files[0].format == "hdf5"
    assert report.findings == ()


def test_weights_only_and_plain_hdf5_are_clean(tmp_path: Path) -> None:
    assert _scan(tmp_path, None, training=None).findings == ()


@pytest.mark.parametrize("reorder", [False, True])
def test_lambda_is_critical(tmp_path: Path, reorder: bool) -> None:
    cfg = _sequential(DENSE, LAMBDA)
    report = _scan(tmp_path, _reorder(cfg) if reorder else cfg)
    assert [(f.rule, f.severity.value) for f in report.findings] == [("KERAS-LAMBDA", "critical")]
    assert "model_config" in report.findings[0].message


def test_decoy_configs_do_not_hide_the_model_config(tmp_path: Path) -> None:
    p = tmp_path / "model.h5"
    _h5(p, _reorder(_sequential(DENSE, LAMBDA)))
    with h5py.File(p, "a") as f:
        for i in range(100):
            f.attrs[f"decoy{i}"] = b'{"class_name": "Dense", "config": {}}'
    assert rules(scan(open_artifact(p))) == {"KERAS-LAMBDA"}


def test_dense_attribute_storage_and_user_block(tmp_path: Path) -> None:
    big = _sequential(DENSE, LAMBDA)
    big["config"]["padding"] = "x" * 200_000  # > 64 KiB: dense storage in a fractal heap
    assert rules(_scan(tmp_path, big, "a.h5", libver="latest")) == {"KERAS-LAMBDA"}
    assert rules(_scan(tmp_path, _sequential(LAMBDA), "b.h5", userblock_size=512)) == {
        "KERAS-LAMBDA"
    }


def test_training_config_is_judged(tmp_path: Path) -> None:
    training = dict(TRAINING, loss={"module": "os", "class_name": "function", "config": "system"})
    p = tmp_path / "m.h5"
    _h5(p, _sequential(DENSE), training)
    (f,) = scan(open_artifact(p)).findings
    assert (f.rule, f.severity.value, f.symbol) == (
        "KERAS-FUNCTION-IMPORT",
        "critical",
        "os.system",
    )


@pytest.mark.parametrize(
    "bad",
    [b"{not json", np.array([b"a", b"b"]), np.int64(3), b"\xff\xfe"],
    ids=["not-json", "array", "number", "not-utf8"],
)
def test_unreadable_config_fails_closed(tmp_path: Path, bad: object) -> None:
    (f,) = _scan(tmp_path, bad).findings
    assert (f.rule, f.severity.value) == ("KERAS-CONFIG-UNREADABLE", "high")


def test_config_too_deep(tmp_path: Path) -> None:
    deep = b'{"class_name": "Sequential", "config": ' * 5000 + b"{}" + b"}" * 5000
    assert rules(_scan(tmp_path, deep)) == {"CONFIG-TOO-DEEP"}


def test_corrupt_file_fails_closed(tmp_path: Path) -> None:
    p = tmp_path / "model.h5"
    _h5(p, _sequential(LAMBDA))
    data = p.read_bytes()
    p.write_bytes(data[:8] + b"\xff" * 64 + data[72:])  # superblock destroyed
    (f,) = scan(open_artifact(p)).findings
    assert (f.rule, f.severity.value) == ("HDF5-UNREADABLE", "high")


def test_h5_inside_an_archive(tmp_path: Path) -> None:
    buf = io.BytesIO()
    _h5(buf, _sequential(DENSE, LAMBDA))
    p = tmp_path / "bundle.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("models/model.h5", buf.getvalue())
    findings = scan(open_artifact(p)).findings
    assert [(f.rule, f.member) for f in findings] == [("KERAS-LAMBDA", "models/model.h5")]


@pytest.mark.parametrize("kw", [{}, {"libver": "latest"}, {"userblock_size": 512}])
@pytest.mark.parametrize("vlen", [False, True])
def test_without_h5py_the_builtin_reader_reads_ordinary_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kw: dict[str, Any], vlen: bool
) -> None:
    benign, evil = tmp_path / "benign.h5", tmp_path / "evil.h5"
    for p, cfg in ((benign, _sequential(DENSE)), (evil, _reorder(_sequential(DENSE, LAMBDA)))):
        _h5(p, json.dumps(cfg) if vlen else cfg, **kw)
    monkeypatch.setitem(sys.modules, "h5py", None)
    assert scan(open_artifact(benign)).findings == ()
    assert rules(scan(open_artifact(evil))) == {"KERAS-LAMBDA"}


def test_without_h5py_an_unreadable_layout_fails_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = tmp_path / "model.h5"
    _h5(p, _sequential(DENSE), libver="latest")
    with h5py.File(p, "a") as f:
        for i in range(20):  # past max_compact: dense attribute storage, not built in
            f.attrs[f"extra{i}"] = i
    monkeypatch.setitem(sys.modules, "h5py", None)
    (f,) = scan(open_artifact(p)).findings
    assert (f.rule, f.severity.value) == ("HDF5-NOT-INSPECTED", "high")


def test_a_crashing_hdf5_library_is_a_finding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # libhdf5 segfaults on some hostile files: the reader runs in a child process, and a child
    # killed by a signal (simulated here) is a high finding, not a crashed scanner
    from mlsec.scan.formats import hdf5

    p = tmp_path / "model.h5"
    _h5(p, _sequential(DENSE))
    monkeypatch.setattr(hdf5, "_PROBE", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    (f,) = scan(open_artifact(p)).findings
    assert (f.rule, f.severity.value) == ("HDF5-UNREADABLE", "high")
    assert "crashed" in f.message
