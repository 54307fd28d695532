"""Vulnerability audit through the real pip-audit subprocess (mlsec.sbom.audit).

The public OSV service cannot be reached here or in CI; the ``osv`` fixture (osv_server.py) is a
local OSV-compatible server that serves real public records (PYSEC-2018-28 / GHSA-x84v-xcm2-53pg
for requests<2.20.0, PYSEC-2019-217 / GHSA-462w-v97r-4m45 for jinja2<2.10.1). pip-audit talks to
it through ``--osv-url``, so everything from pip-audit's OSV client to our JSON reading is real.
Each pip-audit run costs about 0.7 s: the main result is computed once per module.
"""

from __future__ import annotations

import copy
import importlib.util
import socket
import subprocess
from pathlib import Path

import pytest

from mlsec.errors import SbomError, UsageError
from mlsec.sbom import audit as audit_module
from mlsec.sbom.audit import AuditResult, Vulnerability, audit
from mlsec.sbom.deps import Dependency, read_requirements
from tests.unit.sbom.conftest import FAILING_PACKAGE
from tests.unit.sbom.osv_server import GHSA_462W, GHSA_X84V, PYSEC_2018_28, OsvServer

REQUIREMENTS = """\
requests==2.19.0 ; python_version < "3.8"
requests==2.31.0 ; python_version >= "3.8"
Jinja2==2.10
six==1.16.0
numpy>=1.26
peft @ https://github.com/huggingface/peft/archive/v0.10.0.zip
"""


def pin(name: str, version: str) -> Dependency:
    return Dependency(name, version, f"=={version}", (), None, "test:1")


@pytest.fixture(scope="module")
def result(osv: OsvServer, tmp_path_factory: pytest.TempPathFactory) -> AuditResult:
    req = tmp_path_factory.mktemp("audit") / "requirements.txt"
    req.write_text(REQUIREMENTS)
    return audit(read_requirements(req), osv_url=osv.url, timeout=10)


def test_known_vulnerabilities_with_aliases_fixes_and_severity(result: AuditResult) -> None:
    assert result.service == "osv"
    assert result.vulnerabilities == (
        Vulnerability(
            id="PYSEC-2019-217",
            aliases=("CVE-2019-10906", "GHSA-462w-v97r-4m45"),
            package="jinja2",
            version="2.10",
            fix_versions=("2.10.1",),
            description="In Pallets Jinja before 2.10.1, str.format_map allows a sandbox escape.",
            severity="high",
            source="osv",
        ),
        Vulnerability(
            id="PYSEC-2018-28",
            aliases=("CVE-2018-18074", "GHSA-x84v-xcm2-53pg"),
            package="requests",
            version="2.19.0",
            fix_versions=("2.20.0",),
            description=(
                "The Requests package before 2.20.0 for Python sends an HTTP Authorization header "
                "to an http URI upon receiving a same-hostname https-to-http redirect, which makes "
                "it easier for remote attackers to discover credentials by sniffing the network."
            ),
            severity="high",
            source="osv",
        ),
    )


def test_every_pin_is_audited_whatever_its_marker(result: AuditResult) -> None:
    # Markers are not evaluated here: both requests pins are audited (in two pip-audit runs,
    # since pip-audit refuses one name twice); the safe versions have no vulnerabilities.
    assert [(d.name, d.version) for d in result.audited] == [
        ("requests", "2.19.0"),
        ("requests", "2.31.0"),
        ("jinja2", "2.10"),
        ("six", "1.16.0"),
    ]
    vulnerable = {(v.package, v.version) for v in result.vulnerabilities}
    assert vulnerable == {("requests", "2.19.0"), ("jinja2", "2.10")}


def test_unpinned_are_reported_not_audited(result: AuditResult, osv: OsvServer) -> None:
    assert [(d.name, d.specifier) for d in result.unpinned] == [("numpy", ">=1.26"), ("peft", "")]
    assert all(d.version is None for d in result.unpinned)
    assert "numpy" not in {d.name for d in result.audited}


def test_to_dict_is_json_ready(result: AuditResult) -> None:
    data = result.to_dict()
    assert data["service"] == "osv"
    assert data["vulnerabilities"][1] == {
        "id": "PYSEC-2018-28",
        "aliases": ["CVE-2018-18074", "GHSA-x84v-xcm2-53pg"],
        "package": "requests",
        "version": "2.19.0",
        "fix_versions": ["2.20.0"],
        "description": result.vulnerabilities[1].description,
        "severity": "high",
        "source": "osv",
    }
    assert [d["purl"] for d in data["unpinned"]] == ["pkg:pypi/numpy", "pkg:pypi/peft"]
    assert data["audited"][0]["purl"] == "pkg:pypi/requests@2.19.0"


def test_service_down_fails_closed_in_one_line(closed_url: str) -> None:
    with pytest.raises(SbomError) as err:
        audit([pin("requests", "2.19.0")], osv_url=closed_url, timeout=5)
    message = str(err.value)
    assert message == (
        f"vulnerability audit failed: OSV service at {closed_url} unreachable: Connection refused"
    )


def test_service_that_never_answers_fails_closed() -> None:
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(SbomError) as err:
            audit([pin("six", "1.16.0")], osv_url=url, timeout=1)
    assert (
        str(err.value) == f"vulnerability audit failed: OSV service at {url} unreachable: timed out"
    )


def test_service_error_on_a_package_fails_closed(osv: OsvServer) -> None:
    with pytest.raises(SbomError) as err:
        audit([pin("six", "1.16.0"), pin(FAILING_PACKAGE, "1.0")], osv_url=osv.url, timeout=5)
    assert str(err.value) == (
        f"vulnerability audit failed: OSV service at {osv.url} answered "
        "500 Server Error: Internal Server Error"
    )


def test_severity_unknown_when_records_cannot_be_fetched(osv: OsvServer) -> None:
    osv.serve_records = False
    try:
        found = audit([pin("jinja2", "2.10")], osv_url=osv.url, timeout=5)
    finally:
        osv.serve_records = True
    assert [(v.id, v.severity) for v in found.vulnerabilities] == [("PYSEC-2019-217", None)]


def test_nothing_pinned_runs_no_subprocess(osv: OsvServer, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_subprocess(*args: object, **kwargs: object) -> None:
        raise AssertionError("pip-audit must not run")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    before = len(osv.requests)
    unpinned = Dependency("numpy", None, ">=1.26", (), None, "r:1")
    assert audit([], osv_url=osv.url) == AuditResult((), (), (), "osv")
    assert audit([unpinned], osv_url=osv.url) == AuditResult((), (), (unpinned,), "osv")
    assert len(osv.requests) == before


def test_bad_service_choices_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="unknown vulnerability service 'nvd'"):
        audit([pin("six", "1.16.0")], service="nvd")
    with pytest.raises(UsageError, match="needs the osv vulnerability service"):
        audit([pin("six", "1.16.0")], service="pypi", osv_url="http://127.0.0.1:1")


def test_missing_pip_audit_is_an_error_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SbomError) as err:
        audit([pin("six", "1.16.0")])
    assert str(err.value) == "vulnerability audit needs pip-audit, which is not installed"
    assert err.value.hint == "pip install 'pip-audit>=2.10,<3'"


# What pip-audit 2.10.1 writes with --strict when a service skips a package (captured here from
# `-s pypi`, whose per-version endpoint answers 404 from this machine).
PYPI_SKIP_STDERR = """\
WARNING:pip_audit._cli:--no-deps is supported, but users are encouraged to fully hash their \
pinned dependencies
ERROR:pip_audit._cli:requests: Dependency not found on PyPI and could not be audited: \
requests (2.19.0)
"""


def test_a_skipped_package_is_named_in_the_failure() -> None:
    group = {"requests": pin("requests", "2.19.0")}
    message = audit_module._failure(
        PYPI_SKIP_STDERR, audit_module.Service.PYPI, "https://api.osv.dev", group
    )
    assert message == (
        "pip-audit skipped requests==2.19.0: Dependency not found on PyPI and could not be "
        "audited: requests (2.19.0)"
    )


def test_audit_reads_requirements_file_end_to_end(
    osv: OsvServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    real_run = subprocess.run

    def recording_run(argv: list[str], **kwargs: object) -> object:
        calls.append(list(argv))
        return real_run(argv, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(subprocess, "run", recording_run)
    req = tmp_path / "requirements.txt"
    req.write_text("jinja2==2.10.1\n")  # the fixed version
    found = audit(read_requirements(req), osv_url=f"{osv.url}/v1/query", timeout=5)
    assert found.vulnerabilities == ()
    assert [(d.name, d.version) for d in found.audited] == [("jinja2", "2.10.1")]
    # nothing resolved or installed, the given service asked; no --strict: a skipped package is
    # reported as unauditable (test_a_package_the_service_skips_is_unauditable), never as clean
    (argv,) = calls
    assert argv[1:3] == ["-m", "pip_audit"]
    for flag in ("--no-deps", "--disable-pip"):
        assert flag in argv
    assert "--strict" not in argv
    assert argv[argv.index("--osv-url") + 1] == f"{osv.url}/v1/query"
    assert argv[argv.index("-s") + 1] == "osv"


def test_severity_from_github_rating_then_cvss_v3() -> None:
    severity_of = audit_module._severity_of
    assert severity_of(GHSA_X84V) == "high"  # database_specific.severity
    assert severity_of(PYSEC_2018_28) is None  # PYSEC records carry no severity
    moderate = copy.deepcopy(GHSA_462W)
    moderate["database_specific"]["severity"] = "MODERATE"
    assert severity_of(moderate) == "medium"
    # without GitHub's rating, the CVSS v3 vector is scored: 7.5 and 8.6 (NVD's figures)
    for record in (GHSA_X84V, GHSA_462W):
        unrated = copy.deepcopy(record)
        del unrated["database_specific"]
        assert severity_of(unrated) == "high"
    vectors = {
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H": "critical",  # 9.8
        "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:L/A:N": "medium",  # 4.2
        "CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N": "low",  # 1.6
        "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:N": "none",  # 0.0
        "9.1": "critical",
        "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N": None,
        "CVSS:3.1/AV:N/AC:L": None,
    }
    for score, expected in vectors.items():
        assert severity_of({"severity": [{"type": "CVSS_V3", "score": score}]}) == expected
    assert audit_module._cvss3_base_score(GHSA_462W["severity"][0]["score"]) == 8.6
    assert audit_module._cvss3_base_score(GHSA_X84V["severity"][0]["score"]) == 7.5


def test_offline_error_names_osv_url(closed_url: str) -> None:
    with pytest.raises(SbomError) as err:
        audit([pin("requests", "2.19.0")], osv_url=closed_url, timeout=5)
    assert err.value.hint is not None and "--osv-url" in err.value.hint


def test_local_build_is_unauditable_not_clean(osv: OsvServer) -> None:
    found = audit([pin("torch", "2.1.0+cpu"), pin("jinja2", "2.10")], osv_url=osv.url, timeout=10)
    assert [(d.name, d.version) for d, _ in found.unauditable] == [("torch", "2.1.0+cpu")]
    assert "local build" in found.unauditable[0][1]
    assert [d.name for d in found.audited] == ["jinja2"]  # audited means checked
    assert found.to_dict()["unauditable"][0]["reason"].startswith("local build 2.1.0+cpu")


def test_only_local_builds_runs_no_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_subprocess(*args: object, **kwargs: object) -> None:
        raise AssertionError("pip-audit must not run")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    found = audit([pin("torch", "2.3.1+cu121")])
    assert found.audited == () and len(found.unauditable) == 1


def test_a_package_the_service_skips_is_unauditable(monkeypatch: pytest.MonkeyPatch) -> None:
    # pip-audit without --strict reports a package it cannot audit with a skip_reason (what
    # `-s pypi` writes for a private package: captured shape, pip-audit 2.10.1).
    def fake_run(group, service, osv_url, timeout):  # type: ignore[no-untyped-def]
        return [
            {"name": "internal-lib", "skip_reason": "Dependency not found on PyPI and could "
             "not be audited: internal-lib (1.0)"},
            {"name": "six", "version": "1.16.0", "vulns": []},
        ]  # fmt: skip

    monkeypatch.setattr(audit_module, "_run", fake_run)
    found = audit([pin("internal-lib", "1.0"), pin("six", "1.16.0")], service="pypi")
    assert [d.name for d, _ in found.unauditable] == ["internal-lib"]
    assert "not found on PyPI" in found.unauditable[0][1]
    assert [d.name for d in found.audited] == ["six"]
