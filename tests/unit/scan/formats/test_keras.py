"""Keras v3 archives and legacy HDF5 files, assembled by hand (keras is not installed)."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from mlsec.artifact import open_artifact
from mlsec.scan import scan
from tests.unit.scan.formats.helpers import rules

DENSE = {
    "module": "keras.layers",
    "class_name": "Dense",
    "config": {
        "name": "dense",
        "units": 2,
        "activation": {
            "module": "keras.activations",
            "class_name": "function",
            "config": "relu",
            "registered_name": "function",
        },
        "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}},
    },
    "registered_name": None,
}


def _sequential(*layers: dict) -> dict:
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": "seq", "layers": list(layers)},
        "registered_name": None,
    }


def _lambda_v3() -> dict:
    code = base64.b64encode(b"\xe3" + b"\x00" * 40).decode()  # looks like marshal; never loaded
    return {
        "module": "keras.layers",
        "class_name": "Lambda",
        "config": {
            "name": "lam",
            "function": {
                "class_name": "__lambda__",
                "config": {"code": code, "defaults": None, "closure": None},
            },
        },
        "registered_name": None,
    }


def _weights_h5() -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_dataset("layers/dense/vars/0", data=np.ones((2, 2), dtype=np.float32))
    return buf.getvalue()


def _keras(tmp_path: Path, config: dict, *, weights: bool = True) -> Path:
    p = tmp_path / "model.keras"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.6.0"}))
        zf.writestr("config.json", json.dumps(config))
        if weights:
            zf.writestr("model.weights.h5", _weights_h5())
    return p


def test_benign_keras_archive(tmp_path: Path) -> None:
    report = scan(open_artifact(_keras(tmp_path, _sequential(DENSE))))
    assert report.files[0].format == "keras-zip"
    assert report.findings == ()
    assert report.files[0].members_scanned == 2  # config.json and metadata.json


def test_lambda_layer_is_critical(tmp_path: Path) -> None:
    report = scan(open_artifact(_keras(tmp_path, _sequential(DENSE, _lambda_v3()))))
    assert [f.rule for f in report.findings] == ["KERAS-LAMBDA"]
    assert report.findings[0].severity == "critical"


def test_keras_layout_without_weights_is_still_checked(tmp_path: Path) -> None:
    report = scan(open_artifact(_keras(tmp_path, _sequential(_lambda_v3()), weights=False)))
    assert report.files[0].format == "zip"
    assert "KERAS-LAMBDA" in rules(report)


@pytest.mark.parametrize(
    ("module", "fn", "severity"),
    [("os", "system", "critical"), ("builtins", "exec", "critical"), ("mypkg.utils", "f", "high")],
)
def test_cve_2025_1550_function_by_module(
    tmp_path: Path, module: str, fn: str, severity: str
) -> None:
    layer = {
        "module": "keras.layers",
        "class_name": "Lambda",
        "config": {
            "name": "l",
            "function": {
                "module": module,
                "class_name": "function",
                "config": fn,
                "registered_name": "function",
            },
        },
    }
    report = scan(open_artifact(_keras(tmp_path, _sequential(layer))))
    [f] = [f for f in report.findings if f.rule == "KERAS-FUNCTION-IMPORT"]
    assert f.severity == severity
    assert f.symbol == f"{module}.{fn}"


def test_custom_object_is_medium(tmp_path: Path) -> None:
    layer = {"module": "my_company.layers", "class_name": "Fancy", "config": {"name": "f"}}
    report = scan(open_artifact(_keras(tmp_path, _sequential(layer))))
    [f] = report.findings
    assert (f.rule, f.severity) == ("KERAS-CUSTOM-OBJECT", "medium")


def test_tf_op_lambda(tmp_path: Path) -> None:
    layer = {"class_name": "TFOpLambda", "config": {"name": "t", "function": "io.write_file"}}
    report = scan(open_artifact(_keras(tmp_path, _sequential(layer))))
    assert [(f.rule, f.severity) for f in report.findings] == [("KERAS-TF-OP", "high")]


def test_bad_config_json(tmp_path: Path) -> None:
    p = tmp_path / "model.keras"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("metadata.json", "{}")
        zf.writestr("config.json", "{not json")
        zf.writestr("model.weights.h5", _weights_h5())
    assert "KERAS-CONFIG-UNREADABLE" in rules(scan(open_artifact(p)))


def _keras2_config(with_lambda: bool) -> dict:
    layers = [{"class_name": "Dense", "config": {"name": "d", "units": 2}}]
    if with_lambda:
        layers.append(
            {
                "class_name": "Lambda",
                "config": {
                    "name": "lambda_1",
                    "function": ["4wEAAAAAAAAA", None, None],
                    "function_type": "lambda",
                    "module": "__main__",
                },
            }
        )
    return {"class_name": "Sequential", "config": {"name": "s", "layers": layers}}


@pytest.mark.parametrize("vlen", [False, True])
@pytest.mark.parametrize("pad", [0, 100_000, 3_000_000])
def test_legacy_h5(tmp_path: Path, vlen: bool, pad: int) -> None:
    for with_lambda in (False, True):
        p = tmp_path / f"m{with_lambda}.h5"
        cfg = _keras2_config(with_lambda)
        cfg["config"]["padding"] = "x" * pad  # > 64 KiB forces dense attribute storage
        with h5py.File(p, "w") as f:
            text = json.dumps(cfg)
            f.attrs["model_config"] = text if vlen else text.encode()
            f.attrs["keras_version"] = b"2.15.0"
            f.create_dataset("model_weights/d/kernel", data=np.zeros((4, 4)))
        report = scan(open_artifact(p))
        assert report.files[0].format == "hdf5"
        assert ("KERAS-LAMBDA" in rules(report)) is with_lambda
        assert len(report.findings) == int(with_lambda)


def test_plain_hdf5_is_clean(tmp_path: Path) -> None:
    p = tmp_path / "data.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("x", data=np.arange(1000))
    assert scan(open_artifact(p)).findings == ()
