"""Configs nested beyond what recursive parsers survive: the callable deep inside is still found,
and the depth itself is a finding (fail closed), never a RecursionError or a clean report."""

from __future__ import annotations

from pathlib import Path

from tests.unit.scan.formats.helpers import rules, scan_bytes


def _block_yaml(depth: int, leaf: str) -> bytes:
    lines = [f"{'  ' * i}k{i}:" for i in range(depth)]
    return ("\n".join(lines) + f"\n{'  ' * depth}{leaf}\n").encode()


def _json(depth: int, leaf: str) -> bytes:
    # built as text: json.dumps itself recurses once per level
    return ('{"k": ' * depth + leaf + "}" * depth).encode()


def test_target_600_deep_in_yaml(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, _block_yaml(600, "_target_: os.system"), "model_config.yaml")
    by_rule = {f.rule: f.severity.value for f in report.findings}
    assert by_rule == {"HYDRA-DANGEROUS-TARGET": "critical", "CONFIG-TOO-DEEP": "high"}


def test_target_600_deep_in_flow_yaml(tmp_path: Path) -> None:
    data = b"a: " + b"[" * 600 + b"{_target_: subprocess.Popen}" + b"]" * 600 + b"\n"
    assert rules(scan_bytes(tmp_path, data, "c.yaml")) == {
        "HYDRA-DANGEROUS-TARGET",
        "CONFIG-TOO-DEEP",
    }


def test_target_600_deep_in_json(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, _json(600, '{"_target_": "os.system"}'), "config.json")
    assert {"HYDRA-DANGEROUS-TARGET", "CONFIG-TOO-DEEP"} <= rules(report)


def test_json_too_deep_for_the_decoder_fails_closed(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, _json(20_000, '{"_target_": "os.system"}'), "config.json")
    (f,) = report.findings
    assert (f.rule, f.severity.value) == ("CONFIG-TOO-DEEP", "high")


def test_ordinary_nesting_is_not_too_deep(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, _block_yaml(40, "_target_: torch.nn.Linear"), "c.yaml")
    assert [(f.rule, f.severity.value) for f in report.findings] == [("HYDRA-TARGET", "low")]
    report = scan_bytes(tmp_path, _json(40, '{"_target_": "torch.nn.Linear"}'), "c.json")
    assert rules(report) == {"HYDRA-TARGET"}


def test_escaped_key_and_aliased_target(tmp_path: Path) -> None:
    escaped = b'model:\n  "\\x5ftarget_": os.system\n'
    assert rules(scan_bytes(tmp_path, escaped, "a.yaml")) == {"HYDRA-DANGEROUS-TARGET"}
    aliased = b"x: &fn os.system\nmodel:\n  _target_: *fn\n"
    assert rules(scan_bytes(tmp_path, aliased, "b.yaml")) == {"HYDRA-DANGEROUS-TARGET"}


def test_collection_as_target_is_malformed(tmp_path: Path) -> None:
    data = b"model:\n  _target_: [os, system]\n"
    assert rules(scan_bytes(tmp_path, data, "c.yaml")) == {"HYDRA-TARGET-MALFORMED"}


def test_invalid_yaml_is_not_instantiable(tmp_path: Path) -> None:
    data = b"model:\n  _target_: os.system\n  - broken: [\n"
    assert rules(scan_bytes(tmp_path, data, "c.yaml")) == set()


def test_flow_yaml_deeper_than_the_walk_is_reported_unparsed(tmp_path: Path) -> None:
    # PyYAML's scanner is quadratic in open flow levels: 100,000 of them took minutes
    data = b"a: " + b"[" * 100_000 + b"{_target_: os.system}" + b"]" * 100_000 + b"\n"
    (f,) = scan_bytes(tmp_path, data, "c.yaml").findings
    assert (f.rule, f.severity.value) == ("CONFIG-TOO-DEEP", "high")


def test_brackets_inside_quoted_scalars_are_not_depth(tmp_path: Path) -> None:
    data = b'model:\n  _target_: torch.nn.Linear\n  pattern: "' + b"[" * 5000 + b'"\n'
    assert rules(scan_bytes(tmp_path, data, "c.yaml")) == {"HYDRA-TARGET"}
