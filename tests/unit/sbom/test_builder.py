"""The CycloneDX 1.6 ML-BOM: shape, schema validity (JSON and XML), and the contract with
``mlsec verify --sbom`` (file components) and with signatures (the root digest)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from uuid import UUID

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from cyclonedx.validation.xml import XmlValidator

from mlsec.artifact import open_artifact
from mlsec.sbom.builder import MODEL_REF, build_sbom
from mlsec.sbom.card import read_model_card
from mlsec.signing.manifest import Manifest
from mlsec.signing.sbom import bom_files


def _dep(name, version=None, specifier="", source="requirements.txt:1"):
    purl = f"pkg:pypi/{name}@{version}" if version else f"pkg:pypi/{name}"
    return SimpleNamespace(
        name=name, version=version, specifier=specifier, marker=None, source=source, purl=purl
    )


def _vuln(vid, package, version, severity="high"):
    return SimpleNamespace(
        id=vid,
        aliases=("CVE-2018-18074",),
        package=package,
        version=version,
        fix_versions=("2.20.0",),
        description="Session leaks Authorization header on redirect.",
        severity=severity,
        source="OSV",
    )


@pytest.fixture
def sbom(example_model):
    art = open_artifact(example_model, digests=True)
    return build_sbom(
        art,
        card=read_model_card(example_model),
        dependencies=[_dep("requests", "2.19.0", "==2.19.0"), _dep("numpy", None, ">=1.26")],
        vulnerabilities=[_vuln("PYSEC-2018-28", "requests", "2.19.0")],
        version="1.0.0",
    ), art


def test_json_is_valid_cyclonedx_1_6(sbom):
    s, _ = sbom
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(s.to_json()) is None
    doc = json.loads(s.to_json())
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.6"
    assert doc["serialNumber"].startswith("urn:uuid:")
    assert doc["metadata"]["tools"]["components"][0]["name"] == "mlsec"


def test_xml_is_valid_cyclonedx_1_6_and_carries_the_model_card(sbom):
    s, _ = sbom
    xml = s.to_xml()
    assert XmlValidator(SchemaVersion.V1_6).validate_str(xml) is None
    assert '<modelCard bom-ref="model-card">' in xml
    assert "<task>text-classification</task>" in xml


def test_model_component_and_its_card(sbom, example_model):
    s, art = sbom
    model = s.document["metadata"]["component"]
    assert model["type"] == "machine-learning-model" and model["bom-ref"] == MODEL_REF
    assert model["name"] == "tiny-sentiment" and model["version"] == "1.0.0"
    assert model["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    props = {p["name"]: p["value"] for p in model["properties"]}
    # The same root digest a signature of this model carries as its subject.
    assert props["mlsec:root-digest"] == "sha256:" + Manifest.from_artifact(art).root_digest
    assert props["mlsec:base-model"] == "distilbert-base-uncased"
    card = model["modelCard"]
    params = card["modelParameters"]
    assert params["task"] == "text-classification"
    assert params["approach"] == {"type": "supervised"}
    assert params["modelArchitecture"] == "DistilBertForSequenceClassification"
    assert params["architectureFamily"] == "distilbert"
    assert params["datasets"] == [{"ref": "dataset:imdb"}]


def test_files_components_are_exactly_the_artifact_files(sbom):
    s, art = sbom
    assert bom_files(s.document) == {f.path: f.sha256 for f in art.files}
    assert s.file_count == len(art.files)
    comps = {c["bom-ref"]: c for c in s.document["components"]}
    pkl = comps["file:training_state.pkl"]
    assert {"name": "mlsec:format", "value": "pickle"} in pkl["properties"]


def test_datasets_dependencies_and_vulnerabilities(sbom):
    s, _ = sbom
    comps = {c["bom-ref"]: c for c in s.document["components"]}
    ds = comps["dataset:imdb"]
    assert ds["type"] == "data"
    assert ds["externalReferences"][0]["url"] == "https://huggingface.co/datasets/imdb"
    req = comps["pkg:pypi/requests@2.19.0"]
    assert (req["type"], req["name"], req["version"], req["purl"]) == (
        "library",
        "requests",
        "2.19.0",
        "pkg:pypi/requests@2.19.0",
    )
    numpy = comps["pkg:pypi/numpy"]
    assert "version" not in numpy
    assert {"name": "mlsec:specifier", "value": ">=1.26"} in numpy["properties"]
    graph = {d["ref"]: d.get("dependsOn", []) for d in s.document["dependencies"]}
    assert set(graph[MODEL_REF]) == set(comps)
    (vuln,) = s.document["vulnerabilities"]
    assert vuln["id"] == "PYSEC-2018-28"
    assert vuln["affects"] == [
        {"ref": "pkg:pypi/requests@2.19.0", "versions": [{"version": "2.19.0"}]}
    ]
    assert vuln["ratings"][0]["severity"] == "high"
    assert vuln["references"][0]["id"] == "CVE-2018-18074"
    assert vuln["recommendation"] == "Upgrade requests to 2.20.0"


def test_reproducible_with_fixed_timestamp_and_serial(example_model):
    art = open_artifact(example_model, digests=True)
    kw = {
        "card": read_model_card(example_model),
        "timestamp": datetime(2026, 1, 1, tzinfo=UTC),
        "serial": UUID(int=1),
    }
    assert build_sbom(art, **kw).to_json() == build_sbom(art, **kw).to_json()


def test_single_file_model_and_digests_computed_on_demand(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    art = open_artifact(tmp_path / "model.safetensors")  # no digests yet
    s = build_sbom(art)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(s.to_json()) is None
    assert list(bom_files(s.document)) == ["model.safetensors"]
    assert s.document["metadata"]["component"]["name"] == "model.safetensors"


def test_validate_sbom_accepts_ours_and_rejects_a_broken_one(sbom):
    from mlsec.errors import SbomError
    from mlsec.sbom import SbomFormat
    from mlsec.sbom.api import validate_sbom

    s, _ = sbom
    validate_sbom(s.to_json())
    validate_sbom(s.to_xml(), SbomFormat.XML)
    broken = json.loads(s.to_json())
    broken["components"][0]["type"] = "weights"
    with pytest.raises(SbomError) as exc:
        validate_sbom(json.dumps(broken))
    assert str(exc.value).startswith("the SBOM does not validate against CycloneDX 1.6")
    assert "\n" not in str(exc.value)
    with pytest.raises(SbomError):
        validate_sbom(s.to_xml().replace("<hash alg=", "<hashh alg=", 1), SbomFormat.XML)


def test_unauditable_library_carries_the_reason(example_model):
    from mlsec.sbom.deps import Dependency

    dep = Dependency("torch", "2.1.0+cpu", "==2.1.0+cpu", (), None, "requirements.txt:1")
    bom = build_sbom(
        open_artifact(example_model, digests=True),
        dependencies=(dep,),
        audited_by="osv",
        unauditable={"torch": "local build 2.1.0+cpu"},
    )
    [lib] = [c for c in bom.document["components"] if c["type"] == "library"]
    assert {"name": "mlsec:unauditable", "value": "local build 2.1.0+cpu"} in lib["properties"]
    from mlsec.policy.evidence import _bom_unauditable

    assert _bom_unauditable(bom.document) == [
        {"name": "torch", "version": "2.1.0+cpu", "reason": "local build 2.1.0+cpu"}
    ]
