"""SPDX 3.0.1 JSON-LD of a built SBOM, with the AI and Dataset profiles.

The document is derived from the :class:`~mlsec.sbom.builder.Sbom` the CycloneDX builder made —
the same files, digests, model card, datasets, dependencies, vulnerabilities and timestamp — so
the two formats cannot disagree about the model. Shape:

* ``CreationInfo`` (blank node ``_:creationinfo``): spec version 3.0.1, the creation time (the
  CycloneDX timestamp, so ``SOURCE_DATE_EPOCH`` applies), created by the ``SoftwareAgent`` mlsec
  using the ``Tool`` mlsec ``<version>``.
* ``SpdxDocument`` (profiles it conforms to, data licence CC0-1.0) whose root element is a
  ``software_Sbom`` (type ``analyzed``; whether the dependencies were audited in its comment)
  whose root element is the model; both list every element.
* ``ai_AIPackage`` — the model (primary purpose ``model``): type of model (architecture family and
  architecture), domain (task), information about application (description, uses, languages) and
  training (datasets, base models), limitations, metrics, the model-signing root digest as a
  ``Hash``, and its licence (``hasDeclaredLicense`` → a ``simplelicensing_LicenseExpression``).
  Each base model the card names is an ``ai_AIPackage`` the model is ``descendantOf``.
* ``software_File`` per file, ``verifiedUsing`` a SHA-256 ``Hash``; the model ``contains`` them.
* ``dataset_DatasetPackage`` per dataset the card names; the model is ``trainedOn`` them.
* ``software_Package`` per Python dependency (``software_packageUrl`` = its purl); the model
  ``dependsOn`` them. With ``--audit``, each known vulnerability is a ``security_Vulnerability``
  its package ``hasAssociatedVulnerability``.

``spdxId`` IRIs are ``urn:uuid:<uuid>#<local name>`` where the UUID (v5) is derived from the
document's own content: the same model, options and ``SOURCE_DATE_EPOCH`` give a byte-identical
document. :func:`validate_spdx3` checks a document with SPDX's generated bindings
(``spdx-python-model``).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from uuid import NAMESPACE_URL, uuid5

from mlsec import __version__
from mlsec.errors import SbomError
from mlsec.sbom.builder import _HF_ID

if TYPE_CHECKING:
    from mlsec.sbom.builder import Sbom

__all__ = ["SPDX_CONTEXT", "to_spdx3", "to_spdx3_json", "validate_spdx3"]

SPDX_CONTEXT = "https://spdx.org/rdf/3.0.1/spdx-context.jsonld"
_SPEC = "3.0.1"
_CI = "_:creationinfo"
_PLACEHOLDER = "urn:mlsec:spdx3:placeholder"
_LICENSE_REF = re.compile(r"[^A-Za-z0-9.-]+")
_PY_ID = re.compile(r" \(\d+\)")  # the bindings name objects by id(): noise to a reader


def to_spdx3(sbom: Sbom) -> dict[str, Any]:
    """The SPDX 3.0.1 JSON-LD document (a JSON-ready dict) of ``sbom``.

    >>> doc = to_spdx3(make_sbom("path/to/model"))  # doctest: +SKIP
    >>> doc["@graph"][0]["type"]  # doctest: +SKIP
    'CreationInfo'
    """
    probe = _document(sbom, _PLACEHOLDER)
    canonical = json.dumps(probe, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    namespace = f"urn:uuid:{uuid5(NAMESPACE_URL, 'urn:mlsec:spdx3:' + canonical)}"
    return _document(sbom, namespace)


def to_spdx3_json(sbom: Sbom, *, indent: int | None = 2) -> str:
    """:func:`to_spdx3` serialised as JSON text (with a final newline)."""
    return json.dumps(to_spdx3(sbom), indent=indent, ensure_ascii=False) + "\n"


def validate_spdx3(text: str) -> None:
    """Check an SPDX 3.0.1 JSON-LD document with SPDX's generated model bindings
    (``spdx-python-model``): known types and properties, value types and vocabularies, required
    properties and cardinalities (by writing it back), and that every reference resolves.
    Raises :class:`SbomError` when it does not hold."""
    try:
        from spdx_python_model import v3_0_1 as model
    except ImportError:
        raise SbomError(
            "cannot validate SPDX 3: spdx-python-model is not installed",
            hint="pip install 'mlsec[spdx]' (or spdx-python-model)",
        ) from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise SbomError(f"the SPDX document is not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("@context") != SPDX_CONTEXT:
        raise SbomError(f"the SPDX document's @context is not {SPDX_CONTEXT}")
    objects = model.SHACLObjectSet()
    try:
        model.JSONLDDeserializer().deserialize_data(data, objects)
        missing = objects.link()
        model.JSONLDSerializer().serialize_data(objects)
    except (
        Exception
    ) as exc:  # whatever the bindings refuse, the document is not valid (fail closed)
        detail = _PY_ID.sub("", str(exc).strip("\"'")) or type(exc).__name__
        raise SbomError(
            f"the SPDX document does not validate against SPDX {_SPEC}: {detail}"
        ) from None
    if missing:
        raise SbomError(f"the SPDX document refers to undefined elements: {sorted(missing)[0]}")


def _document(sbom: Sbom, ns: str) -> dict[str, Any]:
    """The document with spdxIds under ``ns`` (a pure function of the SBOM and ``ns``)."""
    bom = sbom.document
    card = sbom.card
    meta = bom["metadata"]
    component = meta["component"]
    doc_id = ns
    agent_id = f"{ns}#agent/mlsec"
    tool_id = f"{ns}#tool/mlsec"
    model_id = f"{ns}#model"

    def element(kind: str, local: str, **props: Any) -> dict[str, Any]:
        return {"type": kind, "spdxId": f"{ns}#{local}", "creationInfo": _CI, **props}

    graph: list[dict[str, Any]] = [
        {
            "type": "CreationInfo",
            "@id": _CI,
            "specVersion": _SPEC,
            "created": _spdx_time(meta["timestamp"]),
            "createdBy": [agent_id],
            "createdUsing": [tool_id],
        },
        {"type": "SoftwareAgent", "spdxId": agent_id, "creationInfo": _CI, "name": "mlsec"},
        {"type": "Tool", "spdxId": tool_id, "creationInfo": _CI, "name": f"mlsec {__version__}"},
    ]
    props = {p["name"]: p["value"] for p in component.get("properties", [])}
    ai: dict[str, Any] = {
        "type": "ai_AIPackage",
        "spdxId": model_id,
        "creationInfo": _CI,
        "name": component["name"],
    }
    if component.get("version"):
        ai["software_packageVersion"] = component["version"]
    if card.description:
        ai["description"] = card.description
    ai["software_primaryPurpose"] = "model"
    root = props.get("mlsec:root-digest", "")
    if root.startswith("sha256:"):
        ai["verifiedUsing"] = [
            {
                "type": "Hash",
                "algorithm": "sha256",
                "hashValue": root.removeprefix("sha256:"),
                "comment": "OpenSSF model-signing v1.0 root digest of the model's files",
            }
        ]
    ai.update(_ai_fields(sbom))
    graph.append(ai)

    files: list[str] = []
    datasets: list[str] = []
    libraries: dict[str, str] = {}  # CycloneDX bom-ref -> spdxId
    for comp in bom.get("components", []):
        kind = comp.get("type")
        if kind == "file":
            entry = element("software_File", "file/" + _local(comp["name"]), name=comp["name"])
            entry["verifiedUsing"] = [
                {"type": "Hash", "algorithm": "sha256", "hashValue": h["content"]}
                for h in comp.get("hashes", [])
                if h.get("alg") == "SHA-256"
            ]
            fmt = {p["name"]: p["value"] for p in comp.get("properties", [])}.get("mlsec:format")
            if fmt:
                entry["comment"] = f"format: {fmt}"
            files.append(entry["spdxId"])
            graph.append(entry)
        elif kind == "data":
            entry = element("dataset_DatasetPackage", "dataset/" + _local(comp["name"]))
            entry["name"] = comp["name"]
            entry["software_primaryPurpose"] = "data"
            urls = [r["url"] for r in comp.get("externalReferences", []) if r.get("url")]
            entry["software_downloadLocation"] = urls[0] if urls else "NOASSERTION"
            entry["dataset_datasetType"] = ["noAssertion"]  # a card names, it does not describe
            datasets.append(entry["spdxId"])
            graph.append(entry)
        elif kind == "library":
            entry = element("software_Package", "package/" + _local(comp["bom-ref"]))
            entry["name"] = comp["name"]
            if comp.get("version"):
                entry["software_packageVersion"] = comp["version"]
            if comp.get("purl"):
                entry["software_packageUrl"] = comp["purl"]
            entry["software_primaryPurpose"] = "library"
            lib_props = {p["name"]: p["value"] for p in comp.get("properties", [])}
            notes = (
                [f"declared in {lib_props['mlsec:source']}"] if "mlsec:source" in lib_props else []
            )
            if "mlsec:specifier" in lib_props:
                notes.append(f"specifier {lib_props['mlsec:specifier']}")
            if "mlsec:marker" in lib_props:
                notes.append(f"marker {lib_props['mlsec:marker']}")
            if notes:
                entry["comment"] = "; ".join(notes)
            libraries[comp["bom-ref"]] = entry["spdxId"]
            graph.append(entry)

    def relate(local: str, kind: str, source: str, targets: list[str], **extra: Any) -> None:
        if targets:
            graph.append(
                element(
                    "Relationship",
                    f"relationship/{local}",
                    **{"from": source},
                    relationshipType=kind,
                    to=targets,
                    **extra,
                )
            )

    bases: list[str] = []
    for base in card.base_models:  # the card's lineage: the model descends from its base models
        entry = element("ai_AIPackage", "base-model/" + _local(base), name=base)
        entry["software_primaryPurpose"] = "model"
        if _HF_ID.match(base):
            entry["software_downloadLocation"] = f"https://huggingface.co/{base}"
        bases.append(entry["spdxId"])
        graph.append(entry)

    relate("contains", "contains", model_id, files, completeness="complete")
    relate("trainedOn", "trainedOn", model_id, datasets)
    relate("descendantOf", "descendantOf", model_id, bases)
    relate("dependsOn", "dependsOn", model_id, list(libraries.values()))

    expression = _license_expression(card.licenses)
    if expression:
        lic = element(
            "simplelicensing_LicenseExpression",
            "license/declared",
            simplelicensing_licenseExpression=expression,
        )
        graph.append(lic)
        relate("declaredLicense", "hasDeclaredLicense", model_id, [lic["spdxId"]])
    data_license = element(
        "simplelicensing_LicenseExpression",
        "license/data",
        simplelicensing_licenseExpression="CC0-1.0",
    )
    graph.append(data_license)

    vulns = False
    for vuln in bom.get("vulnerabilities", []):
        for affected in vuln.get("affects", []):
            target = libraries.get(affected.get("ref", ""))
            if target is None:
                continue
            vulns = True
            local = _local(vuln["bom-ref"])
            entry = element("security_Vulnerability", f"vulnerability/{local}", name=vuln["id"])
            if vuln.get("description"):
                entry["description"] = vuln["description"]
            entry["externalIdentifier"] = [
                {"type": "ExternalIdentifier", **_vuln_identifier(i)}
                for i in [vuln["id"], *(r["id"] for r in vuln.get("references", []))]
            ]
            url = vuln.get("source", {}).get("url")
            if url:
                entry["externalRef"] = [
                    {"type": "ExternalRef", "externalRefType": "securityAdvisory", "locator": [url]}
                ]
            graph.append(entry)
            relate(
                f"vulnerability/{local}", "hasAssociatedVulnerability", target, [entry["spdxId"]]
            )

    profiles = ["core", "software", "ai", "dataset", "simpleLicensing"]
    if vulns:
        profiles.append("security")
    elements = [e["spdxId"] for e in graph if "spdxId" in e]
    audited = {p["name"]: p["value"] for p in meta.get("properties", [])}.get("mlsec:audited")
    bom_element = element(
        "software_Sbom",
        "sbom",
        name=f"SBOM of {component['name']}",
        software_sbomType=["analyzed"],  # made from the model's files, after it was built
        rootElement=[model_id],
        element=elements,
    )
    bom_element["comment"] = (
        f"dependencies audited for known vulnerabilities with {audited}"
        if audited
        else "dependencies not audited for known vulnerabilities"
    )
    graph.append(bom_element)
    graph.append(
        {
            "type": "SpdxDocument",
            "spdxId": doc_id,
            "creationInfo": _CI,
            "name": f"SBOM of {component['name']}",
            "profileConformance": profiles,
            "dataLicense": data_license["spdxId"],
            "rootElement": [bom_element["spdxId"]],
            "element": [*elements, bom_element["spdxId"]],
        }
    )
    return {"@context": SPDX_CONTEXT, "@graph": graph}


def _ai_fields(sbom: Sbom) -> dict[str, Any]:
    """What the model card gives, as AI profile properties."""
    card = sbom.card
    out: dict[str, Any] = {}
    kinds = [k for k in (card.architecture_family, card.architecture) if k]
    if kinds:
        out["ai_typeOfModel"] = kinds
    if card.task:
        out["ai_domain"] = [card.task]
    application: list[str] = []
    if card.use_cases:
        application.append("Uses: " + " ".join(card.use_cases))
    if card.languages:
        application.append("Languages: " + ", ".join(card.languages))
    if card.library:
        application.append(f"Library: {card.library}")
    if application:
        out["ai_informationAboutApplication"] = "\n".join(application)
    training: list[str] = []
    if card.datasets:
        training.append("Trained on: " + ", ".join(card.datasets))
    if card.base_models:
        training.append("Base model: " + ", ".join(card.base_models))
    if training:
        out["ai_informationAboutTraining"] = "\n".join(training)
    if card.limitations:
        out["ai_limitation"] = "\n".join(card.limitations)
    if card.metrics:
        out["ai_metric"] = [
            {
                "type": "DictionaryEntry",
                "key": m.type + (f" ({m.dataset})" if m.dataset else ""),
                "value": m.value,
            }
            for m in card.metrics
        ]
    return out


def _license_expression(names: tuple[str, ...]) -> str | None:
    """One SPDX licence expression for the card's licences: SPDX ids and expressions as they
    are (resolved like the CycloneDX builder does), other names as ``LicenseRef-`` ids."""
    from mlsec.sbom.builder import _licenses

    parts: list[str] = []
    for name in names:
        for item in _licenses([name]):
            if "expression" in item:
                parts.append(item["expression"])
            elif item["license"].get("id"):
                parts.append(item["license"]["id"])
            else:
                ref = _LICENSE_REF.sub("-", item["license"]["name"]).strip("-") or "unnamed"
                parts.append(f"LicenseRef-{ref}")
    unique = list(dict.fromkeys(parts))
    if not unique:
        return None
    if len(unique) == 1:
        return unique[0]
    return " AND ".join(f"({p})" if " " in p and not p.startswith("(") else p for p in unique)


def _vuln_identifier(vuln_id: str) -> dict[str, str]:
    kind = "cve" if vuln_id.startswith("CVE-") else "securityOther"
    return {"externalIdentifierType": kind, "identifier": vuln_id}


def _local(name: str) -> str:
    """``name`` as an IRI fragment: percent-encoded, keeping ``/`` for readable paths."""
    return quote(name, safe="/@:")


def _spdx_time(iso: str) -> str:
    """SPDX 3's DateTime: UTC, whole seconds, ``Z`` (``2024-01-01T00:00:00Z``)."""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        raise SbomError(f"SBOM timestamp {iso!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
