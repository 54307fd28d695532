"""Rego policies (regopy, offline): deny messages, fail closed on anything but a set of strings,
compile errors as one line, and nothing printed on stdout."""

from __future__ import annotations

import json

import pytest

from mlsec.errors import PolicyError
from mlsec.policy.evaluate import evaluate
from mlsec.policy.model import load_policy
from mlsec.policy.rego import deny_messages
from tests.unit.policy.test_evaluate import ev

CRITICAL = """package mlsec
import rego.v1

deny contains msg if {
    some f in input.scan.findings
    f.severity == "critical"
    msg := sprintf("critical finding in %s (%s)", [f.file, f.symbol])
}

deny contains "model must declare a licence" if {
    count(input.model.licenses) == 0
}
"""


def test_deny_messages_over_evidence():
    finding = {"severity": "critical", "rule": "R", "file": "x.pkl", "symbol": "os.system"}
    msgs = deny_messages([("p.rego", CRITICAL)], ev(scan__findings=[finding], model__licenses=[]))
    assert msgs == ["critical finding in x.pkl (os.system)", "model must declare a licence"]
    assert deny_messages([("p.rego", CRITICAL)], ev()) == []


def test_rego_file_as_the_policy(tmp_path):
    p = tmp_path / "gate.rego"
    p.write_text(CRITICAL)
    pol = load_policy(p)
    assert pol.name == "gate"
    d = evaluate(pol, ev(model__licenses=[]))
    assert not d.allowed
    assert [(c.rule, c.message) for c in d.checks] == [("rego", "model must declare a licence")]
    d = evaluate(pol, ev())
    assert d.allowed and d.checks[0].message == "no denial from 1 Rego module(s)"


def test_yaml_policy_with_rego_modules(tmp_path):
    (tmp_path / "extra.rego").write_text(CRITICAL)
    p = tmp_path / "p.yaml"
    p.write_text(
        "apiVersion: mlsec/policy/v1\nsize: {max_bytes: 5}\nrego: {modules: [extra.rego]}\n"
    )
    d = evaluate(load_policy(p), ev(model__licenses=[]))
    assert [c.rule for c in d.denials] == ["size", "rego"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("package other\nimport rego.v1\ndeny contains 1 if { true }\n", "does not define"),
        ("package mlsec\nimport rego.v1\ndeny := 5\n", "must be a set of strings"),
        ("package mlsec\nimport rego.v1\ndeny contains 5 if { true }\n", "must be a set of str"),
        ("package mlsec\n deny contains if {", "p.rego: Rego policy does not compile: p.rego:2"),
    ],
)
def test_fail_closed_and_one_line(source, message, capfd):
    with pytest.raises(PolicyError) as exc:
        deny_messages([("p.rego", source)], ev())
    assert message in str(exc.value) and "\n" not in str(exc.value)
    out, _ = capfd.readouterr()
    assert out == ""  # regopy's own error printing does not reach stdout


def test_cli_json_stays_pure_with_a_rego_policy(cli, example_model, tmp_path):
    p = tmp_path / "gate.rego"
    p.write_text(CRITICAL.replace("count(input.model.licenses) == 0", "true"))
    r = cli("admit", example_model, "--policy", p, "-f", "json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["checks"] == [
        {"rule": "rego", "passed": False, "message": "model must declare a licence"}
    ]
    bad = tmp_path / "bad.rego"
    bad.write_text("package mlsec\n deny contains if {")
    r = cli("admit", example_model, "--policy", bad, "-f", "json")
    assert r.exit_code == 2 and r.stdout == "" and "does not compile" in r.stderr
