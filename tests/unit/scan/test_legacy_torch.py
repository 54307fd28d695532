"""Legacy (non-zip) torch.save of whole modules, written with real torch at test time."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mlsec.artifact import open_artifact
from mlsec.scan import scan

from .conftest import ScanBytes, rules_of, worst
from .samples import glob, proto, s

torch = pytest.importorskip("torch")
nn = torch.nn


def _legacy(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


@pytest.mark.parametrize(
    "module",
    [
        lambda: nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.LayerNorm(4)),
        lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Dropout(0.1)),
        lambda: nn.LSTM(4, 8, num_layers=2),
        lambda: nn.Sequential(nn.Embedding(10, 4), nn.GRU(4, 4), nn.Flatten()),
    ],
)
def test_whole_module_legacy_save_is_clean(scan_bytes: ScanBytes, module) -> None:  # type: ignore[no-untyped-def]
    report = scan_bytes(_legacy(module()), name="model.pt")
    assert not [f for f in report.findings if f.severity.at_least(f.severity.MEDIUM)], [
        (f.rule, f.symbol) for f in report.findings
    ]


class Net(nn.Module):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)


def test_main_module_classes_stay_medium(tmp_path: Path) -> None:
    # The class lives in this test module (not __main__): save under the name __main__ as a
    # training script would, by rewriting the class's module for the save only.
    Net.__module__ = "__main__"
    try:
        import __main__

        setattr(__main__, "Net", Net)
        data = _legacy(Net())
    finally:
        Net.__module__ = __name__
    p = tmp_path / "model.pt"
    p.write_bytes(data)
    report = scan(open_artifact(p))
    assert worst(report) == "medium"
    assert "PICKLE-INDIRECT-CALL" not in rules_of(report)
    assert any(f.symbol == "__main__.Net" for f in report.findings)


def test_module_persistent_id_with_a_dangerous_class_is_still_caught(scan_bytes: ScanBytes) -> None:
    # ('module', os.system, file, source) as a persistent id, then called: judged as os.system.
    pid = b"(" + s("module") + glob("os", "system") + s("f.py") + s("src") + b"tQ"
    data = proto(2, pid + s("id") + b"\x85R")
    report = scan_bytes(data)
    assert worst(report) == "critical"
    assert any(f.symbol == "os.system" for f in report.findings)


def test_module_persistent_id_with_a_computed_class_is_high(scan_bytes: ScanBytes) -> None:
    computed = glob("collections", "OrderedDict") + b")R"
    pid = b"(" + s("module") + computed + s("f.py") + s("src") + b"tQ"
    report = scan_bytes(proto(2, pid + b")R"))
    assert "PICKLE-INDIRECT-CALL" in rules_of(report)
