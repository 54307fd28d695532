"""Hydra / OmegaConf ``_target_`` callables in YAML and JSON configs, alone and inside a NeMo
style ``.nemo`` tar archive. Nothing is instantiated: the configs are only parsed."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from tests.unit.scan.formats.helpers import rules, scan_bytes

NEMO_CONFIG = """\
model:
  encoder:
    _target_: nemo.collections.asr.modules.ConformerEncoder
    feat_in: 80
  optim:
    name: adamw
"""

EVIL = """\
model:
  preprocessor:
    _target_: os.system
    _args_: ["touch /tmp/pwned"]
"""


def test_ordinary_targets_are_low(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, NEMO_CONFIG.encode(), "model_config.yaml")
    (f,) = report.findings
    assert (f.rule, f.severity.value) == ("HYDRA-TARGET", "low")
    assert f.symbol == "nemo.collections.asr.modules.ConformerEncoder"
    assert "model.encoder._target_" in f.message


def test_dangerous_target_is_critical(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, EVIL.encode(), "model_config.yaml")
    (f,) = report.findings
    assert (f.rule, f.severity.value, f.symbol) == (
        "HYDRA-DANGEROUS-TARGET",
        "critical",
        "os.system",
    )


def test_aliases_builtins_and_dunders(tmp_path: Path) -> None:
    cases = {
        "posix.system": "HYDRA-DANGEROUS-TARGET",  # module alias of os
        "eval": "HYDRA-DANGEROUS-TARGET",  # a bare builtin
        "builtins.exec": "HYDRA-DANGEROUS-TARGET",
        "subprocess.Popen": "HYDRA-DANGEROUS-TARGET",
        "torch.optim.Adam.__init__.__globals__": "HYDRA-DANGEROUS-TARGET",
        "torch.optim.Adam": "HYDRA-TARGET",
    }
    for target, rule in cases.items():
        report = scan_bytes(tmp_path, f"a:\n  _target_: {target}\n".encode(), "c.yaml")
        assert rules(report) == {rule}, target


def test_json_config_and_call_key(tmp_path: Path) -> None:
    doc = {"trainer": {"callbacks": [{"_target_": "runpy.run_path", "path_name": "x.py"}]}}
    report = scan_bytes(tmp_path, json.dumps(doc).encode(), "config.json")
    assert rules(report) == {"HYDRA-DANGEROUS-TARGET"}
    report = scan_bytes(tmp_path, b"x:\n  _call_: shutil.rmtree\n", "c.yaml")
    assert rules(report) == {"HYDRA-DANGEROUS-TARGET"}


def test_malformed_target_fails_closed_and_plain_yaml_is_clean(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, b"a:\n  _target_: [1, 2]\n", "c.yaml")
    assert rules(report) == {"HYDRA-TARGET-MALFORMED"}
    assert scan_bytes(tmp_path, b"lr: 0.1\nname: x\n", "c.yaml").findings == ()
    assert scan_bytes(tmp_path, b"a: [unclosed\n_target_: os.system\n", "c.yaml").findings == ()


def test_anchor_bomb_is_walked_once(tmp_path: Path) -> None:
    lines = ["a0: &a0 {_target_: os.system}"]
    for i in range(1, 30):
        lines.append(f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}]")
    report = scan_bytes(tmp_path, ("\n".join(lines) + "\n").encode(), "bomb.yaml")
    assert [f.rule for f in report.findings] == ["HYDRA-DANGEROUS-TARGET"]


def test_nemo_archive_member(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("model_config.yaml", EVIL.encode()), ("model_weights.ckpt", b"x")):
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    report = scan_bytes(tmp_path, buf.getvalue(), "asr.nemo")
    crit = [f for f in report.findings if f.rule == "HYDRA-DANGEROUS-TARGET"]
    assert crit and crit[0].member is not None and crit[0].member.endswith("model_config.yaml")
