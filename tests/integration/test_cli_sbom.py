"""``mlsec sbom`` end to end: valid CycloneDX 1.6 out, dependencies in, one-line errors, atomic
output, and the round trip with ``mlsec sign --sbom`` / ``mlsec verify --sbom``."""

from __future__ import annotations

import json

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from cyclonedx.validation.xml import XmlValidator

from mlsec.artifact import open_artifact
from mlsec.signing.sbom import bom_files


def _components(doc):
    return {c["bom-ref"]: c for c in doc.get("components", [])}


def test_json_to_stdout_and_to_a_file(cli, example_model, tmp_path):
    r = cli("sbom", example_model)
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(r.stdout) is None
    art = open_artifact(example_model, digests=True)
    assert bom_files(doc) == {f.path: f.sha256 for f in art.files}
    assert "sbom: 5 files, 1 dataset, 0 dependencies" in r.stderr

    out = tmp_path / "bom.json"
    r = cli("sbom", example_model, "--output", out, "--name", "acme/tiny", "--model-version", "2")
    assert r.exit_code == 0 and r.stdout == ""
    model = json.loads(out.read_text())["metadata"]["component"]
    assert (model["name"], model["version"]) == ("acme/tiny", "2")


def test_xml(cli, example_model):
    r = cli("sbom", example_model, "-f", "cyclonedx-xml")
    assert r.exit_code == 0, r.stderr
    assert XmlValidator(SchemaVersion.V1_6).validate_str(r.stdout) is None
    assert "<modelArchitecture>DistilBertForSequenceClassification</modelArchitecture>" in r.stdout


def test_requirements_given_and_discovered(cli, example_model, tmp_path):
    (example_model / "requirements.txt").write_text("torch==2.13.0\nsafetensors>=0.4\n")
    extra = tmp_path / "reqs.txt"
    extra.write_text("requests==2.19.0  # pinned on purpose\ntorch==2.12.0\n")
    r = cli("sbom", example_model, "-r", extra)
    assert r.exit_code == 0, r.stderr
    comps = _components(json.loads(r.stdout))
    assert comps["pkg:pypi/requests@2.19.0"]["version"] == "2.19.0"
    # The explicit file wins over what the model declares for the same package.
    assert "pkg:pypi/torch@2.12.0" in comps and "pkg:pypi/torch@2.13.0" not in comps
    assert "pkg:pypi/safetensors" in comps
    assert "requirements.txt" in bom_files(json.loads(r.stdout))  # still one of the model's files

    r = cli("sbom", example_model, "--no-discover")
    comps = _components(json.loads(r.stdout))
    assert not [c for c in comps.values() if c["type"] == "library"]


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (None, ["--requirements", "{tmp}/missing.txt"], "missing.txt"),
        ("bad-req", ["--requirements", "{tmp}/bad.txt"], "bad.txt:2:"),
        ("bad-card", [], "README.md:2: malformed YAML front matter"),
        (None, ["--vuln-service", "nvd"], "--vuln-service"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_output(
    cli, example_model, tmp_path, setup, args, message
):
    if setup == "bad-req":
        (tmp_path / "bad.txt").write_text("numpy==1.26\nthis is not a requirement!!\n")
    if setup == "bad-card":
        (example_model / "README.md").write_text("---\nlicense: [mit\n---\n")
    out = tmp_path / "bom.json"
    r = cli("sbom", example_model, "-o", out, *[a.format(tmp=tmp_path) for a in args])
    assert r.exit_code == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) <= 2
    assert not out.exists()


def test_missing_model_is_exit_2(cli, tmp_path):
    r = cli("sbom", tmp_path / "nope")
    assert r.exit_code == 2 and "nope" in r.stderr


def test_sbom_sign_verify_round_trip_and_tamper(cli, example_model, tmp_path):
    bom = tmp_path / "bom.json"
    key = tmp_path / "k"
    assert cli("sbom", example_model, "-o", bom).exit_code == 0
    assert cli("keygen", "--output", key, "--no-passphrase").exit_code == 0
    sig = tmp_path / "bom.sig"
    r = cli("sign", "--sbom", bom, example_model, "--key", f"{key}.key", "--output", sig)
    assert r.exit_code == 0, r.stderr
    r = cli("verify", "--sbom", bom, "--signature", sig, example_model, "--key", f"{key}.pub")
    assert r.exit_code == 0, r.stderr
    weights = example_model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    r = cli("verify", "--sbom", bom, "--signature", sig, example_model, "--key", f"{key}.pub")
    assert r.exit_code == 1 and "model.safetensors" in r.stderr


def test_unknown_format_is_a_usage_error(cli, example_model, tmp_path):
    r = cli("sbom", example_model, "-f", "spdx", "-o", tmp_path / "x")
    assert r.exit_code == 2 and "spdx" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()


@pytest.fixture(scope="module")
def osv_url():
    """The public OSV service cannot be reached here or in CI: a local OSV-compatible server
    serving real OSV records stands in for it (see tests/unit/sbom/osv_server.py)."""
    from tests.unit.sbom.osv_server import osv_server

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        mp.setenv("no_proxy", "127.0.0.1,localhost")
        with osv_server() as server:
            yield server.url


def test_audit_adds_known_vulnerabilities(cli, example_model, tmp_path, osv_url):
    reqs = tmp_path / "reqs.txt"
    reqs.write_text("requests==2.19.0\njinja2==2.10\nnumpy>=1.26\nsix==1.16.0\n")
    out = tmp_path / "bom.json"
    r = cli("sbom", example_model, "-r", reqs, "--audit", "--osv-url", osv_url, "-o", out)
    assert r.exit_code == 0, r.stderr
    assert "4 dependencies, 2 known vulnerabilities" in r.stderr
    text = out.read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    vulns = {v["id"]: v for v in json.loads(text)["vulnerabilities"]}
    assert set(vulns) == {"PYSEC-2018-28", "PYSEC-2019-217"}
    req = vulns["PYSEC-2018-28"]
    assert req["affects"][0]["ref"] == "pkg:pypi/requests@2.19.0"
    assert "CVE-2018-18074" in {ref["id"] for ref in req["references"]}
    assert req["ratings"][0]["severity"] == "high"  # GHSA-x84v-xcm2-53pg rates it HIGH
    assert req["recommendation"] == "Upgrade requests to 2.20.0"


def test_audit_fails_closed_when_the_service_is_down(cli, example_model, tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    reqs = tmp_path / "reqs.txt"
    reqs.write_text("requests==2.19.0\n")
    out = tmp_path / "bom.json"
    r = cli(
        "sbom",
        example_model,
        "-r",
        reqs,
        "--audit",
        "--osv-url",
        f"http://127.0.0.1:{port}",
        "-o",
        out,
    )
    assert r.exit_code == 2
    assert "vulnerability audit failed" in r.stderr and "unreachable" in r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()


def test_validate_flag(cli, example_model):
    r = cli("sbom", example_model, "--validate", "-f", "cyclonedx-xml")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith('<?xml version="1.0" encoding="UTF-8"?>')
