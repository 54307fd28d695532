"""Policy evaluation over evidence documents: every rule, both outcomes, every reason kept."""

from __future__ import annotations

import copy

import pytest

from mlsec.formats import Format
from mlsec.policy.evaluate import evaluate
from mlsec.policy.model import Policy

BASE = {
    "schema": "mlsec/evidence/v1",
    "artifact": {
        "formats": {"safetensors": 1, "json": 1},
        "files": [
            {"path": "model.safetensors", "format": "safetensors", "size": 10},
            {"path": "config.json", "format": "json", "size": 2},
        ],
        "total_size": 12,
    },
    "scan": {"max_severity": None, "counts": {}, "findings": []},
    "signature": {"given": False, "verified": None, "signer": None, "error": None},
    "sbom": {
        "given": False,
        "source": None,
        "matches_files": None,
        "differences": [],
        "error": None,
        "audited": False,
        "vulnerabilities": [],
    },
    "model": {"name": "m", "licenses": ["apache-2.0"], "error": None},
}


def ev(**changes):
    doc = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        doc[section][key] = value
    return doc


def pol(**kw):
    return Policy(name="t", source="t.yaml", **kw)


def test_no_rules_allows_with_no_checks():
    d = evaluate(pol(), ev())
    assert d.allowed and d.checks == ()
    assert d.to_dict()["decision"] == "allow"


def test_scan_threshold():
    finding = {"severity": "high", "rule": "R", "file": "x.pkl", "symbol": "os.system"}
    d = evaluate(pol(scan_fail_on="high"), ev(scan__findings=[finding], scan__max_severity="high"))
    assert not d.allowed
    assert d.denials[0].message == "1 finding(s) at or above high: high R in x.pkl (os.system)"
    d = evaluate(pol(scan_fail_on="critical"), ev(scan__findings=[finding]))
    assert d.allowed and d.checks[0].passed


def test_signature_required_missing_bad_and_good():
    assert not evaluate(pol(signature_required=True), ev()).allowed
    bad = ev(signature__given=True, signature__verified=False, signature__error="digest differs")
    d = evaluate(pol(), bad)  # a bad signature denies even when none is required
    assert not d.allowed and "digest differs" in d.denials[0].message
    good = ev(signature__given=True, signature__verified=True, signature__signer="key X")
    assert evaluate(pol(signature_required=True), good).allowed


def test_sbom_required_mismatch_and_unusable():
    assert not evaluate(pol(sbom_required=True), ev()).allowed
    diff = [{"path": "extra.bin", "status": "extra"}]
    d = evaluate(
        pol(),
        ev(
            sbom__given=True,
            sbom__source="given",
            sbom__matches_files=False,
            sbom__differences=diff,
        ),
    )
    assert not d.allowed and "extra.bin: extra" in d.denials[0].message
    d = evaluate(pol(), ev(sbom__given=True, sbom__error="not valid JSON"))
    assert not d.allowed and "unusable SBOM" in d.denials[0].message
    ok = ev(sbom__given=True, sbom__source="given", sbom__matches_files=True)
    assert evaluate(pol(sbom_required=True), ok).allowed


VULNS = [
    {
        "id": "PYSEC-1",
        "aliases": ["CVE-1"],
        "package": "requests",
        "version": "2.19.0",
        "severity": "high",
    },
    {"id": "PYSEC-2", "aliases": [], "package": "jinja2", "version": "2.10", "severity": None},
]


def test_vulnerabilities_thresholds_unknown_and_ignore():
    audited = ev(sbom__audited=True, sbom__vulnerabilities=VULNS)
    d = evaluate(pol(vulnerabilities_fail_on="critical"), audited)
    assert d.allowed and "none at or above critical (2 known)" in d.checks[0].message
    d = evaluate(pol(vulnerabilities_fail_on="high"), audited)
    assert not d.allowed and "PYSEC-1 (requests 2.19.0, high)" in d.denials[0].message
    d = evaluate(pol(unknown_severity="deny"), audited)
    assert not d.allowed and "PYSEC-2 (jinja2, severity unknown)" in d.denials[0].message
    d = evaluate(
        pol(vulnerabilities_fail_on="high", ignore_vulnerabilities=frozenset({"CVE-1"})), audited
    )
    assert d.allowed and "1 accepted by the policy" in d.checks[0].message


def test_vulnerability_data_required():
    d = evaluate(pol(vulnerabilities_required=True), ev())
    assert not d.allowed and "vulnerability data is required" in d.denials[0].message
    assert evaluate(pol(vulnerabilities_required=True), ev(sbom__audited=True)).allowed


def test_formats_allow_and_deny():
    d = evaluate(pol(formats_allow=frozenset({Format.SAFETENSORS})), ev())
    assert not d.allowed and d.denials[0].message == "format(s) not allowed: json: config.json"
    d = evaluate(pol(formats_deny=frozenset({Format.PICKLE})), ev())
    assert d.allowed


@pytest.mark.parametrize(
    ("kw", "licenses", "allowed"),
    [
        ({"licenses_allow": ("Apache-2.0",)}, ["apache-2.0"], True),  # case-insensitive
        ({"licenses_allow": ("MIT",)}, ["apache-2.0"], False),
        ({"licenses_deny": ("apache-2.0",)}, ["apache-2.0"], False),
        ({"licenses_required": True}, [], False),
        ({"licenses_deny": ("gpl-3.0",)}, [], True),
    ],
)
def test_licenses(kw, licenses, allowed):
    assert evaluate(pol(**kw), ev(model__licenses=licenses)).allowed is allowed


def test_size_and_every_reason_is_kept():
    d = evaluate(
        pol(max_bytes=5, signature_required=True, formats_allow=frozenset({Format.JSON})), ev()
    )
    assert not d.allowed
    assert [c.rule for c in d.denials] == ["signature", "formats", "size"]
    assert d.denials[-1].message == "12 bytes exceeds the limit of 5"
    assert d.to_dict()["checks"][0] == {
        "rule": "signature",
        "passed": False,
        "message": "a signature is required and none was given",
    }


def test_unauditable_dependencies_are_the_policys_call():
    torch_cpu = {"name": "torch", "version": "2.1.0+cpu", "reason": "local build 2.1.0+cpu"}
    audited = ev(sbom__audited=True, sbom__unauditable=[torch_cpu])
    assert evaluate(pol(vulnerabilities_fail_on="high"), audited).allowed  # default: allow
    d = evaluate(pol(vulnerabilities_fail_on="high", unauditable="deny"), audited)
    assert not d.allowed
    [c] = [c for c in d.denials if c.rule == "vulnerabilities"]
    assert "1 dependency could not be audited: torch==2.1.0+cpu (local build" in c.message
    assert evaluate(pol(unauditable="deny"), ev(sbom__audited=True)).allowed


def test_strict_preset_denies_unauditable():
    from mlsec.policy.model import load_policy

    assert load_policy("strict").unauditable == "deny"
    assert load_policy("default").unauditable == "allow"
