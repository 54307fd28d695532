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

cyclonedx-python-lib builds everything it can model; the model card is added to the JSON (and XML)
it writes, because the library has no model-card type yet (CycloneDX/cyclonedx-python-lib #911).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from mlsec import __version__
from mlsec.artifact import Artifact, sort_key
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
    _bom: Any = field(default=None, repr=False, compare=False)

    @property
    def file_count(self) -> int:
        return sum(1 for c in self.document.get("components", []) if c.get("type") == "file")

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.document, indent=indent, ensure_ascii=False) + "\n"

    def to_xml(self) -> str:
        """The same SBOM as CycloneDX 1.6 XML."""
        from cyclonedx.output.xml import XmlV1Dot6

        xml = XmlV1Dot6(self._bom).output_as_string(indent=2)
        card = self.document["metadata"]["component"].get("modelCard")
        return _xml_with_model_card(xml, card) if card else xml + "\n"


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
) -> Sbom:
    """The CycloneDX 1.6 ML-BOM of ``artifact`` (whose digests must be computed).

    ``name`` overrides the model's name (default: the card's, else the artifact's file name).
    ``timestamp`` and ``serial`` default to now and a random UUID; pass them for reproducible
    output. ``audited_by`` names the vulnerability service the dependencies were audited with: it
    is recorded (``mlsec:audited`` metadata property) so that "audited, nothing found" can be told
    from "not audited".
    """
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.dependency import Dependency as CdxDependency
    from cyclonedx.output.json import JsonV1Dot6

    if not artifact.has_digests:
        artifact = artifact.with_digests()
    card = card or ModelCard()
    model_name = name or card.name or artifact.root.name
    model = Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=model_name,
        version=version,
        bom_ref=MODEL_REF,
        description=card.description,
        licenses=_licenses(card.licenses),
        properties=[
            Property(name="mlsec:root-digest", value=f"sha256:{_root_digest(artifact)}"),
            Property(name="mlsec:file-count", value=str(len(artifact.files))),
            Property(name="mlsec:total-size", value=str(artifact.total_size)),
            *[Property(name="mlsec:base-model", value=b) for b in card.base_models],
            *[Property(name="mlsec:language", value=lang) for lang in card.languages],
        ],
        tags=card.tags or None,
    )
    bom = Bom(serial_number=serial or uuid4())
    bom.metadata.timestamp = timestamp or datetime.now(UTC)
    bom.metadata.component = model
    if audited_by:
        bom.metadata.properties.add(Property(name="mlsec:audited", value=audited_by))
    bom.metadata.tools.components.add(
        Component(type=ComponentType.APPLICATION, name="mlsec", version=__version__)
    )
    refs: list[str] = []
    for f in artifact.files:
        ref = f"file:{f.path}"
        bom.components.add(
            Component(
                type=ComponentType.FILE,
                name=f.path,
                bom_ref=ref,
                hashes=[HashType(alg=HashAlgorithm.SHA_256, content=f.sha256 or "")],
                properties=[
                    Property(name="mlsec:format", value=str(f.format)),
                    Property(name="mlsec:size", value=str(f.size)),
                ],
            )
        )
        refs.append(ref)
    for ds in card.datasets:
        ref = f"dataset:{ds}"
        bom.components.add(
            Component(
                type=ComponentType.DATA, name=ds, bom_ref=ref, external_references=_dataset_refs(ds)
            )
        )
        refs.append(ref)
    lib_refs: dict[str, str] = {}
    for dep in dependencies:
        ref = dep.purl or f"pkg:pypi/{dep.name}"
        if ref in lib_refs.values():
            continue
        lib_refs[dep.name] = ref
        bom.components.add(_library(dep, ref))
        refs.append(ref)
    bom.dependencies.add(
        CdxDependency(ref=model.bom_ref, dependencies=[CdxDependency(ref=_ref(r)) for r in refs])
    )
    for vuln in vulnerabilities:
        target = lib_refs.get(vuln.package)
        if target is not None:
            bom.vulnerabilities.add(_vulnerability(vuln, target))
    try:
        document = json.loads(JsonV1Dot6(bom).output_as_string())
    except Exception as exc:  # the library's own consistency checks
        raise SbomError(f"cannot serialise the SBOM: {exc}") from None
    document["metadata"]["component"]["modelCard"] = _model_card(card)
    return Sbom(document, card, tuple(dependencies), tuple(vulnerabilities), bom)


def _root_digest(artifact: Artifact) -> str:
    """The root digest an OpenSSF model signature of ``artifact`` carries as its subject."""
    from mlsec.signing.manifest import Resource, root_digest

    ordered = sorted(artifact.files, key=lambda f: sort_key(f.path))
    return root_digest([Resource(f.path, "sha256", f.sha256 or "") for f in ordered])


def _ref(value: str) -> Any:
    from cyclonedx.model.bom_ref import BomRef

    return BomRef(value)


def _licenses(names: Sequence[str]) -> list[Any]:
    try:
        from cyclonedx.contrib.license.factories import LicenseFactory
    except ImportError:  # cyclonedx-python-lib before 11.x's contrib move
        from cyclonedx.factory.license import LicenseFactory

    factory = LicenseFactory()
    out = []
    for name in names:
        if name.lower() in ("other", "unknown"):
            continue
        out.append(factory.make_from_string(name))
    return out


def _dataset_refs(name: str) -> list[Any]:
    from cyclonedx.model import ExternalReference, ExternalReferenceType, XsUri

    if not _HF_ID.match(name):
        return []
    return [
        ExternalReference(
            type=ExternalReferenceType.DISTRIBUTION,
            url=XsUri(f"https://huggingface.co/datasets/{name}"),
            comment="Hugging Face Hub dataset id from the model card",
        )
    ]


def _library(dep: Dependency, ref: str) -> Any:
    from cyclonedx.model import Property
    from cyclonedx.model.component import Component, ComponentType
    from packageurl import PackageURL

    purl = PackageURL.from_string(ref) if ref.startswith("pkg:") else None
    props = [Property(name="mlsec:source", value=dep.source)]
    if dep.specifier and dep.version is None:
        props.append(Property(name="mlsec:specifier", value=dep.specifier))
    if dep.marker:
        props.append(Property(name="mlsec:marker", value=dep.marker))
    return Component(
        type=ComponentType.LIBRARY,
        name=dep.name,
        version=dep.version,
        bom_ref=ref,
        purl=purl,
        properties=props,
    )


def _vulnerability(vuln: Vulnerability, target: str) -> Any:
    from cyclonedx.model import XsUri
    from cyclonedx.model.vulnerability import (
        BomTarget,
        BomTargetVersionRange,
        Vulnerability,
        VulnerabilityRating,
        VulnerabilityReference,
        VulnerabilitySeverity,
        VulnerabilitySource,
    )

    source = VulnerabilitySource(name=vuln.source, url=XsUri(_advisory_url(vuln.id)))
    ratings = []
    if vuln.severity:
        with contextlib.suppress(ValueError):  # a severity CycloneDX has no word for: no rating
            ratings.append(
                VulnerabilityRating(source=source, severity=VulnerabilitySeverity(vuln.severity))
            )
    fixes = ", ".join(vuln.fix_versions)
    return Vulnerability(
        bom_ref=f"vuln:{vuln.id}:{vuln.package}",
        id=vuln.id,
        source=source,
        references=[
            VulnerabilityReference(id=a, source=VulnerabilitySource(url=XsUri(_advisory_url(a))))
            for a in vuln.aliases
        ],
        ratings=ratings,
        description=vuln.description or None,
        recommendation=f"Upgrade {vuln.package} to {fixes}" if fixes else None,
        affects=[BomTarget(ref=target, versions=[BomTargetVersionRange(version=vuln.version)])],
    )


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


_NS = "http://cyclonedx.org/schema/bom/1.6"
# Elements of a component that follow ``modelCard`` in the 1.6 XSD sequence.
_AFTER_MODEL_CARD = ("data", "cryptoProperties", "tags")


def _xml_with_model_card(xml: str, card: dict[str, Any]) -> str:
    """Insert the ``modelCard`` (JSON form) into the metadata component of the library's XML."""
    import xml.etree.ElementTree as ET  # our own serialiser's output, not untrusted input

    ET.register_namespace("", _NS)
    root = ET.fromstring(xml)  # noqa: S314
    component = root.find(f"{{{_NS}}}metadata/{{{_NS}}}component")
    if component is None:
        raise SbomError("cannot add the model card to the XML SBOM: no metadata component")
    element = _card_element(card)
    children = list(component)
    index = len(children)
    for i, child in enumerate(children):
        if child.tag.split("}")[-1] in _AFTER_MODEL_CARD:
            index = i
            break
    component.insert(index, element)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _card_element(card: dict[str, Any]) -> Any:
    import xml.etree.ElementTree as ET

    def sub(parent: Any, name: str, text: str | None = None) -> Any:
        el = ET.SubElement(parent, f"{{{_NS}}}{name}")
        if text is not None:
            el.text = text
        return el

    el = ET.Element(f"{{{_NS}}}modelCard", {"bom-ref": card.get("bom-ref", "model-card")})
    params = card.get("modelParameters")
    if params:
        mp = sub(el, "modelParameters")
        if "approach" in params:
            sub(sub(mp, "approach"), "type", params["approach"]["type"])
        for key in ("task", "architectureFamily", "modelArchitecture"):
            if key in params:
                sub(mp, key, params[key])
        if "datasets" in params:
            ds = sub(mp, "datasets")
            for item in params["datasets"]:
                sub(ds, "ref", item["ref"])
    qa = card.get("quantitativeAnalysis")
    if qa:
        pm = sub(sub(el, "quantitativeAnalysis"), "performanceMetrics")
        for m in qa.get("performanceMetrics", []):
            metric = sub(pm, "performanceMetric")
            for key in ("type", "value", "slice"):
                if key in m:
                    sub(metric, key, m[key])
    cons = card.get("considerations")
    if cons:
        ce = sub(el, "considerations")
        for key, item in (("useCases", "useCase"), ("technicalLimitations", "technicalLimitation")):
            if key in cons:
                group = sub(ce, key)
                for text in cons[key]:
                    sub(group, item, text)
    props = card.get("properties")
    if props:
        pe = sub(el, "properties")
        for p in props:
            prop = sub(pe, "property", p["value"])
            prop.set("name", p["name"])
    return el
