"""TorchScript ``code/`` members: operators that reach files or native code are flagged, the code
``torch.jit.save`` writes for ordinary modules is not.

Benign archives are made with the real torch (script and trace, several layer types, a dynamically
quantized model with libtorch's own custom classes). Hostile ones are those archives with one
code member rewritten — only ever parsed by the scanner, never loaded.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from mlsec.artifact import open_artifact  # noqa: E402
from mlsec.scan import ScanReport, scan  # noqa: E402
from mlsec.scan.formats.torchscript import is_code_member  # noqa: E402

nn = torch.nn


class Conv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 3, groups=2), nn.GELU(), nn.AdaptiveAvgPool2d(1),
        )  # fmt: skip
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.1), nn.Linear(8, 4), nn.LogSoftmax(-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class Seq(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.lstm = nn.LSTM(16, 16, batch_first=True, bidirectional=True)
        self.gru = nn.GRU(32, 8, batch_first=True)
        self.norm = nn.LayerNorm(8)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _h = self.lstm(self.emb(tokens))
        out, _g = self.gru(out)
        y = self.norm(out)
        if bool(y.sum() > 0):
            y = y * 2
        for _i in range(2):
            y = torch.tanh(y)
        return y


class Attn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(16, 2, 32, batch_first=True),
            num_layers=1,
            enable_nested_tensor=False,
        )
        self.mha = nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.enc(x)
        z, _ = self.mha(y, y, y)
        return z


def _real_archives(d: Path) -> list[Path]:
    d.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []

    def save(m: object, name: str) -> None:
        p = d / name
        torch.jit.save(m, str(p))
        out.append(p)

    conv, seq, attn = Conv().eval(), Seq().eval(), Attn().eval()
    save(torch.jit.script(conv), "conv_script.pt")
    save(torch.jit.trace(conv, torch.randn(1, 3, 16, 16)), "conv_trace.pt")
    save(torch.jit.script(seq), "seq_script.pt")
    save(torch.jit.trace(seq, torch.randint(0, 50, (2, 5)), check_trace=False), "seq_trace.pt")
    save(torch.jit.script(attn), "attn_script.pt")
    quant = torch.ao.quantization.quantize_dynamic(
        nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)), {nn.Linear}, dtype=torch.qint8
    )
    save(torch.jit.script(quant), "quantized_script.pt")
    return out


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return _real_archives(tmp_path_factory.mktemp("ts"))


def _ts_findings(report: ScanReport) -> list[tuple[str, str, str | None]]:
    return [
        (f.rule, str(f.severity), f.symbol)
        for f in report.findings
        if f.rule.startswith("TORCHSCRIPT-") or (f.member or "").endswith(".py")
    ]


def test_real_torchscript_code_is_clean(archives: list[Path]) -> None:
    members = 0
    for p in archives:
        with zipfile.ZipFile(p) as z:
            members += sum(is_code_member(n) for n in z.namelist())
        assert _ts_findings(scan(open_artifact(p))) == [], p.name
    assert members >= 12
    # The quantized model really uses torch.classes (so the class allowlist is exercised).
    with zipfile.ZipFile(archives[-1]) as z:
        code = b"".join(z.read(n) for n in z.namelist() if is_code_member(n))
    assert b"torch.classes.quantized" in code


# The modules of this file are compiled under its module path.
_OURS = "/code/__torch__/tests/unit/scan/formats/test_torchscript_code.py"


def _rewrite(src: Path, dst: Path, extra: str, *, method: int = zipfile.ZIP_STORED) -> Path:
    """``src`` with ``extra`` (TorchScript statements) put first in the forward of the top-level
    module's code member."""
    done = False
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith(_OURS) and not done:
                done = True
                text = data.decode()
                head, sep, tail = text.partition(") -> Tensor:\n")
                assert sep, text
                data = (
                    head + sep + "".join(f"    {line}\n" for line in extra.splitlines()) + tail
                ).encode()
            zout.writestr(info.filename, data, compress_type=method)
    assert done
    return dst


HOSTILE = [
    ('math.save(x, "/tmp/m")', "TORCHSCRIPT-FILE-OP", "high", "aten::save"),
    ('torch.autograd.save(x, "/tmp/a")', "TORCHSCRIPT-FILE-OP", "high", "aten::save"),
    (
        '_9 = ops.prim.autograd.from_file("/etc/passwd")',
        "TORCHSCRIPT-FILE-OP",
        "high",
        "aten::from_file",
    ),
    ('torch.save(x, "/tmp/mlsec-pwned")', "TORCHSCRIPT-FILE-OP", "high", "aten::save"),
    (
        '_9 = torch.from_file("/etc/passwd", True, 4096)',
        "TORCHSCRIPT-FILE-OP",
        "high",
        "aten::from_file",
    ),
    ('_9 = ops.aten.from_file("/etc/shadow")', "TORCHSCRIPT-FILE-OP", "high", "aten::from_file"),
    ('_9 = torch.ops.aten.save(x, "/tmp/x")', "TORCHSCRIPT-FILE-OP", "high", "aten::save"),
    (
        '_9 = ops.debugprims.load_tensor("t", [1], [1], dtype=6, device=None)',
        "TORCHSCRIPT-FILE-OP",
        "high",
        "debugprims::load_tensor",
    ),
    (
        "_9 = ops.my_native_lib.frobnicate(x)",
        "TORCHSCRIPT-CUSTOM-OP",
        "medium",
        "my_native_lib::frobnicate",
    ),
    ("_9 = torch.ops.evil.run(x)", "TORCHSCRIPT-CUSTOM-OP", "medium", "evil::run"),
    ('_9 = ops.image.read_file("/etc/passwd")', "TORCHSCRIPT-FILE-OP", "high", "image::read_file"),
    (
        'ops.image.write_file("/home/u/.bashrc", x)',
        "TORCHSCRIPT-FILE-OP",
        "high",
        "image::write_file",
    ),
    ("_lib = ops.shady\n_9 = _lib.go(x)", "TORCHSCRIPT-CUSTOM-OP", "medium", "shady::go"),
    ('_f = torch.save\n_f(x, "/tmp/y")', "TORCHSCRIPT-FILE-OP", "high", "aten::save"),
    ('_9 = getattr(ops.sneaky, "go")(x)', "TORCHSCRIPT-CUSTOM-OP", "medium", "sneaky::go"),
    (
        "_9 = __torch__.torch.classes.evil_ns.Shell()",
        "TORCHSCRIPT-CUSTOM-OP",
        "medium",
        "evil_ns::Shell",
    ),
    ("_9 = torch.classes.evil_ns.Shell()", "TORCHSCRIPT-CUSTOM-OP", "medium", "evil_ns::Shell"),
    (
        "_9 = ops.c10d.allreduce_([x], None, None, -1)",
        "TORCHSCRIPT-COLLECTIVE",
        "low",
        "c10d::allreduce_",
    ),
]


@pytest.mark.parametrize(("code", "rule", "severity", "symbol"), HOSTILE)
def test_operators_that_reach_files_or_native_code(
    archives: list[Path], tmp_path: Path, code: str, rule: str, severity: str, symbol: str
) -> None:
    p = _rewrite(archives[0], tmp_path / "evil.pt", code)
    assert _ts_findings(scan(open_artifact(p))) == [(rule, severity, symbol)]


def test_custom_class_attribute_annotation(archives: list[Path], tmp_path: Path) -> None:
    # A module attribute typed as a custom class: data.pkl builds it through __setstate__ on load.
    src = archives[0]
    dst = tmp_path / "evil.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith(_OURS):
                data = data.replace(
                    b"  training : bool\n",
                    b"  training : bool\n  h : __torch__.torch.classes.loader.Handle\n",
                    1,
                )
                assert b"loader" in data
            zout.writestr(info, data)
    assert _ts_findings(scan(open_artifact(dst))) == [
        ("TORCHSCRIPT-CUSTOM-OP", "medium", "loader::Handle")
    ]


def test_deflated_and_nested_code_members(archives: list[Path], tmp_path: Path) -> None:
    p = _rewrite(
        archives[0], tmp_path / "evil.pt", 'torch.save(x, "/tmp/z")', method=zipfile.ZIP_DEFLATED
    )
    assert ("TORCHSCRIPT-FILE-OP", "high", "aten::save") in _ts_findings(scan(open_artifact(p)))


def test_code_in_a_submodule_file(archives: list[Path], tmp_path: Path) -> None:
    src = archives[0]
    dst = tmp_path / "evil.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("/code/__torch__/torch/nn/modules/linear.py"):
                data = data.replace(
                    b"    return torch.linear",
                    b"    _x = ops.backdoor.exec(input)\n    return torch.linear",
                    1,
                )
                assert b"backdoor" in data
            zout.writestr(info, data)
    found = _ts_findings(scan(open_artifact(dst)))
    assert found == [("TORCHSCRIPT-CUSTOM-OP", "medium", "backdoor::exec")]


@pytest.mark.parametrize("junk", ["def (:\n", "x = " + "(" * 300 + ")" * 300 + "\n", "a\x00b\n"])
def test_code_the_scanner_cannot_parse_fails_closed(
    archives: list[Path], tmp_path: Path, junk: str
) -> None:
    src = archives[0]
    dst = tmp_path / "evil.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith(_OURS):
                data = junk.encode() + data
            zout.writestr(info, data)
    found = _ts_findings(scan(open_artifact(dst)))
    assert [(r, s) for r, s, _ in found] == [("TORCHSCRIPT-UNPARSABLE", "high")]


def test_code_outside_a_pytorch_archive_is_not_torchscript(tmp_path: Path) -> None:
    # A plain zip with code/x.py is not a TorchScript archive: no TorchScript judgement.
    p = tmp_path / "src.zip"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("proj/code/x.py", "torch.save(x, 'y')\n")
    assert [f for f in scan(open_artifact(p)).findings if f.rule.startswith("TORCHSCRIPT-")] == []


@pytest.fixture(scope="module")
def lite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("lite") / "model.ptl"
    m = torch.jit.script(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Conv1d(1, 1, 1)))
    m._save_for_lite_interpreter(str(p))
    return p


def _patch_bytecode(src: Path, dst: Path, old: bytes, new: bytes) -> Path:
    assert len(old) == len(new)  # a same-length swap keeps the pickle's framing valid
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("/bytecode.pkl"):
                assert old in data
                data = data.replace(old, new)
            zout.writestr(info, data)
    return dst


def test_lite_interpreter_model_is_clean(lite: Path) -> None:
    with zipfile.ZipFile(lite) as z:
        assert any(n.endswith("/bytecode.pkl") for n in z.namelist())
    assert _ts_findings(scan(open_artifact(lite))) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (b"aten::relu", b"aten::save", ("TORCHSCRIPT-FILE-OP", "high", "aten::save")),
        (b"aten::linear", b"evil::linear", ("TORCHSCRIPT-CUSTOM-OP", "medium", "evil::linear")),
    ],
)
def test_lite_bytecode_operator_table(
    lite: Path, tmp_path: Path, old: bytes, new: bytes, expected: tuple[str, str, str]
) -> None:
    p = _patch_bytecode(lite, tmp_path / "evil.ptl", old, new)
    found = [f for f in scan(open_artifact(p)).findings if f.rule.startswith("TORCHSCRIPT-")]
    assert [(f.rule, str(f.severity), f.symbol) for f in found] == [expected]
    assert (found[0].member or "").endswith("bytecode.pkl")


def test_hostile_shapes_of_code_stay_bounded() -> None:
    from mlsec.formats import Format
    from mlsec.scan.base import ScanContext, ScanOptions
    from mlsec.scan.formats.torchscript import code_findings

    ctx = ScanContext(file="m.pt", options=ScanOptions(), format=Format.TEXT, member="a/code/x.py")
    deep = "x = " + "a." * 200_000 + "b\n"
    assert [f.rule for f in code_findings(deep, ctx)] == ["TORCHSCRIPT-UNPARSABLE"]
    cycle = "_a = _b.c\n_b = _a.d\n_x = _a.e(1)\n"  # aliases that refer to each other
    assert list(code_findings(cycle, ctx)) == []
    chain = "_a = ops.q\n" + "".join(f"_{i + 1}x = _{i}x.f\n" for i in range(100)) + "_0x = _a\n"
    assert [f.symbol for f in code_findings(chain, ctx)] == ["q::f"]
