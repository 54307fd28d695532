"""TorchScript archives written by torch.jit.save (traced and scripted) scan clean: the
torch.jit._pickle helpers of *.debug_pkl / traced_inputs.pkl and the __torch__.* classes of
data.pkl are allowed; anything else in those pickles is still judged."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import torch

from mlsec.artifact import open_artifact
from mlsec.scan import ScanReport, scan
from mlsec.scan.model import Severity
from mlsec.scan.pickle.rules import judge_global

from .samples import proto, s, stack_glob


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 4)
        self.norm = torch.nn.BatchNorm1d(4)
        self.conv = torch.nn.Conv1d(1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.relu(self.norm(self.lin(x)))
        return self.conv(y.unsqueeze(1)).flatten(1)


def _archive(tmp_path: Path, how: str) -> Path:
    m = Block().eval()
    mod = torch.jit.trace(m, torch.ones(2, 3)) if how == "traced" else torch.jit.script(m)
    p = tmp_path / f"{how}.pt"
    torch.jit.save(mod, p)
    return p


def _scan(p: Path) -> ScanReport:
    return scan(open_artifact(p))


@pytest.mark.parametrize("how", ["traced", "scripted"])
def test_torchscript_archive_is_clean(tmp_path: Path, how: str) -> None:
    p = _archive(tmp_path, how)
    names = zipfile.ZipFile(p).namelist()
    assert any(n.endswith(".debug_pkl") for n in names)  # the helpers really are there
    report = _scan(p)
    assert report.findings == (), [(f.rule, f.symbol) for f in report.findings]
    seen = set().union(*(f.globals for f in report.files))
    assert any(g.startswith("__torch__.") for g in seen)
    assert "torch.jit._pickle.build_intlist" in seen


def test_quantized_and_lite_torchscript_are_clean(tmp_path: Path) -> None:
    # dynamic quantisation pickles torch's own C++ class __torch__.torch.classes.quantized.*;
    # the lite-interpreter format adds bytecode.pkl
    q = torch.ao.quantization.quantize_dynamic(
        torch.nn.Sequential(torch.nn.Linear(4, 4)), {torch.nn.Linear}, dtype=torch.qint8
    )
    torch.jit.save(torch.jit.script(q), tmp_path / "quant.pt")
    torch.jit.script(Block().eval())._save_for_lite_interpreter(str(tmp_path / "lite.ptl"))
    for name in ("quant.pt", "lite.ptl"):
        report = _scan(tmp_path / name)
        assert report.findings == (), (name, [(f.rule, f.symbol) for f in report.findings])
    seen = set().union(*(f.globals for f in _scan(tmp_path / "quant.pt").files))
    assert "__torch__.torch.classes.quantized.LinearPackedParamsBase" in seen


def test_cli_exits_0_on_torchscript(tmp_path: Path, cli) -> None:
    _archive(tmp_path, "traced")
    _archive(tmp_path, "scripted")
    assert cli("scan", tmp_path, "--fail-on", "medium").exit_code == 0


@pytest.mark.parametrize(
    "qual",
    [
        "__torch__.Net",
        "__torch__.torch.nn.modules.linear.Linear",
        "__torch__.torch.nn.modules.linear.___torch_mangle_3.Linear",
        "__torch__.torch.classes.quantized.LinearPackedParamsBase",
        "torch.jit._pickle.restore_type_tag",
        "torch.jit._pickle.build_tensor_from_id",
    ],
)
def test_torchscript_names_allowed(qual: str) -> None:
    module, _, name = qual.rpartition(".")
    assert judge_global(module, name).severity is None


@pytest.mark.parametrize(
    ("module", "name", "severity"),
    [
        # a C++ custom class of some library loaded at run time: its __setstate__ is native code
        ("__torch__.torch.classes.mylib", "Loader", Severity.MEDIUM),
        ("__torch__", "os.system", Severity.CRITICAL),
        ("__torch__.x", "__reduce__", Severity.CRITICAL),
        ("torch.jit._pickle", "other", Severity.CRITICAL),  # the rest of torch.jit stays denied
        ("torch.jit", "load", Severity.CRITICAL),
    ],
)
def test_torchscript_lookalikes_are_judged(module: str, name: str, severity: Severity) -> None:
    assert judge_global(module, name).severity is severity


def test_payload_in_a_torchscript_debug_pkl_is_caught(tmp_path: Path) -> None:
    p = _archive(tmp_path, "traced")
    src = zipfile.ZipFile(p)
    out = io.BytesIO()
    evil = proto(2, stack_glob("os", "system") + s("touch /tmp/x") + b"\x85R")
    replaced = 0
    with zipfile.ZipFile(out, "w") as dst:
        for n in src.namelist():
            hit = n.endswith(".debug_pkl") and not replaced
            replaced += hit
            dst.writestr(n, evil if hit else src.read(n))
    assert replaced == 1
    q = tmp_path / "evil.pt"
    q.write_bytes(out.getvalue())
    assert _scan(q).max_severity is Severity.CRITICAL


def test_storage_loader_is_judged_where_it_is_called() -> None:
    # torch.storage._load_from_bytes is torch.load of bytes the pickle chooses: importing it is
    # what every pickled tensor does, so the import is not judged; each call is, as a nested
    # loader (tests/unit/scan/test_nested_loaders.py: computed input critical, bytes scanned).
    from mlsec.scan.pickle.rules import LOADS_LIKE

    assert judge_global("torch.storage", "_load_from_bytes").severity is None
    assert "torch.storage._load_from_bytes" in LOADS_LIKE
