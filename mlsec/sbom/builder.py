"""Build a CycloneDX 1.6 ML-BOM from an artifact, its model card, its dependencies and their
known vulnerabilities.

Shape of the document (the contract ``mlsec verify --sbom`` and ``admit`` rely on):

* ``metadata.component`` — the model: ``type: machine-learning-model``, ``bom-ref: model``, its
  licences, the ``modelCard`` (approach, task, architecture, datasets by reference, metrics,
  use cases, limitations) and the property ``mlsec:root-digest`` — the same root digest an OpenSSF
  model signature carries, which ties the SBOM to a signature.
* ``components`` — one ``file`` component per model file (``name`` = root-relative POSIX path,
  a ``SHA-256`` hash, ``mlsec:format`` and ``mlsec:size`` properties); one ``data`` component per
  dataset the card names; one ``library`` component per Python dependency (``pkg:pypi`` purl).
* ``dependencies`` — the model depends on its files, datasets and libraries.
* ``vulnerabilities`` — the libraries' known vulnerabilities; each ``affects`` its library.

The document is built as plain JSON data, in time linear in the number of files; XML is written
from it by :mod:`mlsec.sbom.xml`. cyclonedx-python-lib resolves licence names to SPDX ids and holds
the official schemas both forms are validated against (``validate_sbom``; every shape in the tests).
Its object model is not used to build: it registers dependencies in quadratic time (seconds for
1,200 files) and has no model-card type (CycloneDX/cyclonedx-python-lib #911).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from mlsec import __version__
from mlsec.artifact import Artifact
from mlsec.errors import SbomError
from mlsec.sbom.card import ModelCard

if TYPE_CHECKING:
    from mlsec.sbom.audit import Vulnerability
    from mlsec.sbom.deps import Dependency

__all__ = ["MODEL_REF", "Sbom", "build_sbom"]

MODEL_REF = "model"
_SPEC = "1.6"
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_TASK_APPROACH = {  # pipeline tags whose learning approach is unambiguous
    "text-classification": "supervised",
    "token-classification": "supervised",
    "image-classification": "supervised",
    "audio-classification": "supervised",
    "object-detection": "supervised",
}


@dataclass(frozen=True, slots=True)
class Sbom:
    """A built SBOM: the CycloneDX document as a JSON-ready dict, plus what went into it."""

    document: dict[str, Any]
    card: ModelCard
    dependencies: tuple[Dependency, ...]
    vulnerabilities: tuple[Vulnerability, ...]

    @property
    def file_count(self) -> int:
        return sum(1 for c in self.document.get("components", []) if c.get("type") == "file")

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.document, indent=indent, ensure_ascii=False) + "\n"

    def to_xml(self) -> str:
        """The same SBOM as CycloneDX 1.6 XML."""
        from mlsec.sbom.xml import to_xml

        return to_xml(self.document)


def build_sbom(
    artifact: Artifact,
    *,
    card: ModelCard | None = None,
    dependencies: Sequence[Dependency] = (),
    vulnerabilities: Sequence[Vulnerability] = (),
    name: str | None = None,
    version: str | None = None,
    timestamp: datetime | None = None,
    serial: UUID | None = None,
    audited_by: str | None = None,
    unauditable: Mapping[str, str] | None = None,
) -> Sbom:
    """The CycloneDX 1.6 ML-BOM of ``artifact`` (digests are computed if missing).

    ``name`` overrides the model's name (default: the card's, else the artifact's file name).
    ``timestamp`` and ``serial`` default to now and a random UUID; pass them for reproducible
    output. ``audited_by`` names the vulnerability service the dependencies were audited with: it
    is recorded (``mlsec:audited`` metadata property) so that "audited, nothing found" can be told
    from "not audited". ``unauditable`` maps a dependency name to why no service could audit it
    (``mlsec:unauditable`` property of that library).

    The document is built directly, in time linear in the number of files (cyclonedx-python-lib's
    object model registers dependencies in quadratic time: 1,200 files took seconds).
    """
    if not artifact.has_digests:
        artifact = artifact.with_digests()
    card = card or ModelCard()
    props = [
        _prop("mlsec:root-digest", f"sha256:{_root_digest(artifact)}"),
        _prop("mlsec:file-count", str(len(artifact.files))),
        _prop("mlsec:total-size", str(artifact.total_size)),
        *[_prop("mlsec:base-model", b) for b in card.base_models],
        *[_prop("mlsec:language", lang) for lang in card.languages],
    ]
    model: dict[str, Any] = {
        "type": "machine-learning-model",
        "bom-ref": MODEL_REF,
        "name": name or card.name or artifact.root.name,
    }
    if version:
        model["version"] = version
    if card.description:
        model["description"] = card.description
    licenses = _licenses(card.licenses)
    if licenses:
        model["licenses"] = licenses
    model["properties"] = props
    model["modelCard"] = _model_card(card)
    if card.tags:
        model["tags"] = list(card.tags)

    epoch = _source_date_epoch()
    if timestamp is None and epoch is not None:
        timestamp = epoch
    metadata: dict[str, Any] = {
        "timestamp": (timestamp or datetime.now(UTC)).isoformat(),
        "tools": {"components": [{"type": "application", "name": "mlsec", "version": __version__}]},
        "component": model,
    }
    if audited_by:
        metadata["properties"] = [_prop("mlsec:audited", audited_by)]

    components: list[dict[str, Any]] = []
    for f in artifact.files:
        components.append(
            {
                "type": "file",
                "bom-ref": f"file:{f.path}",
                "name": f.path,
                "hashes": [{"alg": "SHA-256", "content": f.sha256}],
                "properties": [
                    _prop("mlsec:format", str(f.format)),
                    _prop("mlsec:size", str(f.size)),
                ],
            }
        )
    for ds in card.datasets:
        data: dict[str, Any] = {"type": "data", "bom-ref": f"dataset:{ds}", "name": ds}
        if _HF_ID.match(ds):
            data["externalReferences"] = [
                {
                    "type": "distribution",
                    "url": f"https://huggingface.co/datasets/{ds}",
                    "comment": "Hugging Face Hub dataset id from the model card",
                }
            ]
        components.append(data)
    lib_refs: dict[str, str] = {}
    for dep in dependencies:
        ref = dep.purl or f"pkg:pypi/{dep.name}"
        if ref in lib_refs.values() or dep.name in lib_refs:
            continue
        lib_refs[dep.name] = ref
        components.append(_library(dep, ref, (unauditable or {}).get(dep.name)))

    document: dict[str, Any] = {
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": _SPEC,
        "serialNumber": "",
        "version": 1,
        "metadata": metadata,
        "components": components,
        "dependencies": [
            {"ref": MODEL_REF, "dependsOn": [c["bom-ref"] for c in components]},
        ],
    }
    if serial is None and epoch is not None:
        serial = _content_serial(document)
    document["serialNumber"] = f"urn:uuid:{serial or uuid4()}"
    vulns = [
        _vulnerability(v, lib_refs[v.package]) for v in vulnerabilities if v.package in lib_refs
    ]
    if vulns:
        document["vulnerabilities"] = vulns
    return Sbom(document, card, tuple(dependencies), tuple(vulnerabilities))


def _prop(name: str, value: str) -> dict[str, str]:
    return {"name": name, "value": value}


def _root_digest(artifact: Artifact) -> str:
    """The root digest an OpenSSF model signature of ``artifact`` carries as its subject."""
    return artifact.root_digest


def _licenses(names: Sequence[str]) -> list[dict[str, Any]]:
    """CycloneDX ``licenses``: SPDX ids where the name is one, else named licences; an SPDX
    expression is the single ``expression`` item the schema allows."""
    try:
        from cyclonedx.contrib.license.factories import LicenseFactory
    except ImportError:  # cyclonedx-python-lib before 11.x's contrib move
        from cyclonedx.factory.license import LicenseFactory
    from cyclonedx.model.license import DisjunctiveLicense, LicenseExpression

    factory = LicenseFactory()
    items: list[dict[str, Any]] = []
    expressions: list[str] = []
    for name in names:
        if name.lower() in ("other", "unknown"):
            continue
        lic = factory.make_from_string(name)
        if isinstance(lic, LicenseExpression):
            expressions.append(lic.value)
        elif isinstance(lic, DisjunctiveLicense) and lic.id is not None:
            items.append({"license": {"id": str(lic.id)}})
        else:
            items.append({"license": {"name": name}})
    if expressions:  # the schema allows one expression instead of a list, not both
        parts = [*expressions, *(i["license"].get("id") or i["license"]["name"] for i in items)]
        joined = " AND ".join(f"({p})" if " " in p else p for p in parts)
        return [{"expression": joined}]
    return items


def _library(dep: Dependency, ref: str, unauditable: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "library", "bom-ref": ref, "name": dep.name}
    if dep.version:
        out["version"] = dep.version
    if ref.startswith("pkg:"):
        out["purl"] = ref
    props = [_prop("mlsec:source", dep.source)]
    if dep.specifier and dep.version is None:
        props.append(_prop("mlsec:specifier", dep.specifier))
    if dep.marker:
        props.append(_prop("mlsec:marker", dep.marker))
    if unauditable:
        props.append(_prop("mlsec:unauditable", unauditable))
    out["properties"] = props
    return out


_SEVERITIES = ("critical", "high", "medium", "low", "info", "none", "unknown")


def _vulnerability(vuln: Vulnerability, target: str) -> dict[str, Any]:
    source = {"name": vuln.source, "url": _advisory_url(vuln.id)}
    out: dict[str, Any] = {
        "bom-ref": f"vuln:{vuln.id}:{vuln.package}",
        "id": vuln.id,
        "source": source,
    }
    if vuln.aliases:
        out["references"] = [{"id": a, "source": {"url": _advisory_url(a)}} for a in vuln.aliases]
    if vuln.severity in _SEVERITIES:
        out["ratings"] = [{"source": source, "severity": vuln.severity}]
    if vuln.description:
        out["description"] = vuln.description
    if vuln.fix_versions:
        out["recommendation"] = f"Upgrade {vuln.package} to {', '.join(vuln.fix_versions)}"
    out["affects"] = [{"ref": target, "versions": [{"version": vuln.version}]}]
    return out


def _advisory_url(vuln_id: str) -> str:
    if vuln_id.startswith("CVE-"):
        return f"https://nvd.nist.gov/vuln/detail/{vuln_id}"
    if vuln_id.startswith("GHSA-"):
        return f"https://github.com/advisories/{vuln_id}"
    return f"https://osv.dev/vulnerability/{vuln_id}"


def _model_card(card: ModelCard) -> dict[str, Any]:
    """The CycloneDX ``modelCard`` object (JSON form) for ``card``."""
    params: dict[str, Any] = {}
    approach = _TASK_APPROACH.get(card.task or "")
    if approach:
        params["approach"] = {"type": approach}
    if card.task:
        params["task"] = card.task
    if card.architecture_family:
        params["architectureFamily"] = card.architecture_family
    if card.architecture:
        params["modelArchitecture"] = card.architecture
    if card.datasets:
        params["datasets"] = [{"ref": f"dataset:{ds}"} for ds in card.datasets]
    out: dict[str, Any] = {"bom-ref": "model-card"}
    if params:
        out["modelParameters"] = params
    if card.metrics:
        out["quantitativeAnalysis"] = {
            "performanceMetrics": [
                {"type": m.type, "value": m.value, **({"slice": m.dataset} if m.dataset else {})}
                for m in card.metrics
            ]
        }
    considerations: dict[str, Any] = {}
    if card.use_cases:
        considerations["useCases"] = list(card.use_cases)
    if card.limitations:
        considerations["technicalLimitations"] = list(card.limitations)
    if considerations:
        out["considerations"] = considerations
    props = [{"name": "mlsec:card-source", "value": s} for s in card.sources]
    if card.library:
        props.append({"name": "mlsec:library", "value": card.library})
    if props:
        out["properties"] = props
    return out


def _source_date_epoch() -> datetime | None:
    """``SOURCE_DATE_EPOCH`` (reproducible-builds.org) as a UTC time, when set."""
    import os

    raw = os.environ.get("SOURCE_DATE_EPOCH")
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise SbomError(f"SOURCE_DATE_EPOCH={raw!r}: expected whole seconds since 1970")
    try:
        return datetime.fromtimestamp(int(raw), UTC)
    except (OverflowError, ValueError, OSError):
        raise SbomError(f"SOURCE_DATE_EPOCH={raw!r}: out of range") from None


def _content_serial(document: dict[str, Any]) -> UUID:
    """A serial number derived from the document's content (UUID v5 of its canonical JSON), so
    that the same model, options and SOURCE_DATE_EPOCH give a byte-identical SBOM."""
    import json
    from uuid import NAMESPACE_URL, uuid5

    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return uuid5(NAMESPACE_URL, "urn:mlsec:sbom:" + canonical)
