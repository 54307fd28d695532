"""Policy parsing: presets load, every field is read, and every mistake is a one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlsec.errors import ExitCode, PolicyError
from mlsec.formats import Format
from mlsec.policy.model import PRESETS, load_policy


def _write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load(name):
    policy = load_policy(name)
    assert policy.name == name and policy.description


def test_preset_contents():
    default, strict = load_policy("default"), load_policy("strict")
    assert (default.scan_fail_on, default.signature_required) == ("medium", True)
    assert strict.sbom_required and strict.vulnerabilities_required
    assert Format.PICKLE not in strict.formats_allow and Format.SAFETENSORS in strict.formats_allow
    assert load_policy("permissive").scan_fail_on == "critical"


def test_every_field(tmp_path):
    (tmp_path / "keys").mkdir()
    p = _write(
        tmp_path,
        """
apiVersion: mlsec/policy/v1
name: mine
description: test
scan: {fail_on: high, allow_globals: [mypkg.Net]}
signature: {required: true, key: keys/signer.pub}
sbom: {required: true}
vulnerabilities: {required: true, fail_on: medium, unknown_severity: deny, ignore: [CVE-1]}
formats: {allow: [safetensors, json], deny: [pickle]}
licenses: {required: true, allow: [MIT], deny: [GPL-3.0]}
size: {max_bytes: 1000}
""",
    )
    pol = load_policy(p)
    assert pol.scan_fail_on == "high" and pol.allow_globals == ("mypkg.Net",)
    assert pol.signature_key == tmp_path.resolve() / "keys" / "signer.pub"  # policy-relative
    assert pol.vulnerabilities_fail_on == "medium" and pol.unknown_severity == "deny"
    assert pol.ignore_vulnerabilities == {"CVE-1"}
    assert pol.formats_allow == {Format.SAFETENSORS, Format.JSON}
    assert pol.formats_deny == {Format.PICKLE}
    assert pol.licenses_allow == ("MIT",) and pol.max_bytes == 1000


def test_json_policy(tmp_path):
    p = _write(tmp_path, '{"apiVersion": "mlsec/policy/v1", "scan": {"fail_on": "low"}}', "p.json")
    pol = load_policy(p)
    assert pol.name == "p" and pol.scan_fail_on == "low"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("scan: {fail_on: high}\n", "apiVersion must be 'mlsec/policy/v1'"),
        ("apiVersion: mlsec/policy/v1\nscna: {}\n", "unknown section 'scna'"),
        ("apiVersion: mlsec/policy/v1\nscan: {fial_on: high}\n", "scan: unknown key 'fial_on'"),
        ("apiVersion: mlsec/policy/v1\nscan: {fail_on: severe}\n", "scan.fail_on: expected one of"),
        ("apiVersion: mlsec/policy/v1\nsignature: {required: yes please}\n", "expected true or"),
        ("apiVersion: mlsec/policy/v1\nformats: {deny: [pickel]}\n", "unknown format 'pickel'"),
        ("apiVersion: mlsec/policy/v1\nsize: {max_bytes: -1}\n", "a non-negative integer"),
        ("apiVersion: mlsec/policy/v1\nscan: [1]\n", "scan: expected a mapping"),
        ("apiVersion: mlsec/policy/v1\nscan: {allow_globals: [os]}\n", "is not 'module.name'"),
        ("apiVersion: mlsec/policy/v1\nsignature: {identity: a}\n", "identity and issuer go"),
        (
            "apiVersion: mlsec/policy/v1\nsignature: {key: k, identity: a, issuer: b}\n",
            "give one of key",
        ),
        ("apiVersion: [mlsec\n", "malformed policy"),
        ("- a\n", "the policy is not a mapping"),
        ("a: &x 1\nb: *x\n", "anchors and aliases are not accepted"),
    ],
)
def test_mistakes_are_one_line_errors(tmp_path, body, message):
    p = _write(tmp_path, body)
    with pytest.raises(PolicyError) as exc:
        load_policy(p)
    assert message in str(exc.value) and str(p) in str(exc.value)
    assert "\n" not in str(exc.value) and exc.value.exit_code is ExitCode.ERROR


def test_missing_policy_names_the_presets(tmp_path):
    with pytest.raises(PolicyError) as exc:
        load_policy("defualt")
    assert "cannot read policy" in str(exc.value) and "default" in (exc.value.hint or "")


def test_presets_are_package_resources():
    from importlib.resources import files

    from mlsec.errors import PolicyError
    from mlsec.policy.model import PRESETS, load_policy, preset_text

    for name in PRESETS:
        assert (
            preset_text(name) == (files("mlsec.policy") / "presets" / f"{name}.yaml").read_bytes()
        )
        assert load_policy(name).name == name
    with pytest.raises(PolicyError, match="not a preset"):
        preset_text("lenient")
