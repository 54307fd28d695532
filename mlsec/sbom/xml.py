"""CycloneDX 1.6 XML from the JSON form of an mlsec SBOM.

Covers exactly what :mod:`mlsec.sbom.builder` writes, in the element order the 1.6 XSD
sequences require (the tests validate the output against the official XSD). A key this writer
does not know is an error rather than silently dropped.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from mlsec.errors import SbomError

__all__ = ["NS", "to_xml"]

NS = "http://cyclonedx.org/schema/bom/1.6"
_COMPONENT_ORDER = (
    "name",
    "version",
    "description",
    "hashes",
    "licenses",
    "purl",
    "externalReferences",
    "properties",
    "modelCard",
    "tags",
)


def to_xml(doc: dict[str, Any]) -> str:
    """Serialise the JSON-form SBOM ``doc`` as CycloneDX 1.6 XML text."""
    ET.register_namespace("", NS)
    bom = _el("bom", serialNumber=doc["serialNumber"], version=str(doc.get("version", 1)))
    meta = doc["metadata"]
    m = _sub(bom, "metadata")
    _sub(m, "timestamp", meta["timestamp"])
    tools = _sub(_sub(m, "tools"), "components")
    for tool in meta["tools"]["components"]:
        _component(tools, tool)
    _component(m, meta["component"])
    if meta.get("properties"):
        _properties(m, meta["properties"])
    comps = _sub(bom, "components")
    for c in doc.get("components", []):
        _component(comps, c)
    deps = _sub(bom, "dependencies")
    for d in doc.get("dependencies", []):
        de = _sub(deps, "dependency", ref=d["ref"])
        for ref in d.get("dependsOn", []):
            _sub(de, "dependency", ref=ref)
    if doc.get("vulnerabilities"):
        vulns = _sub(bom, "vulnerabilities")
        for v in doc["vulnerabilities"]:
            _vulnerability(vulns, v)
    ET.indent(bom)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(bom, "unicode") + "\n"


# Characters XML 1.0 cannot carry at all, even as references (its Char production), plus CR,
# which a parser reads back as LF: a file name holding one cannot be written faithfully.
_NOT_XML = re.compile("[^\t\n\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _checked(value: str, tag: str) -> str:
    m = _NOT_XML.search(value)
    if m:
        raise SbomError(  # the CLI escapes the value when it prints the message
            f"{tag} '{value[:200]}': character U+{ord(m.group()):04X} cannot be written in XML",
            hint="use --format cyclonedx-json, which can carry any name",
        )
    return value


def _el(tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.Element(f"{{{NS}}}{tag}", {k: _checked(v, tag) for k, v in attrs.items()})
    if text is not None:
        el.text = _checked(text, tag)
    return el


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = _el(tag, text, **attrs)
    parent.append(el)
    return el


def _component(parent: ET.Element, c: dict[str, Any]) -> None:
    attrs = {"type": c["type"]}
    if "bom-ref" in c:
        attrs["bom-ref"] = c["bom-ref"]
    el = _sub(parent, "component", **attrs)
    unknown = set(c) - {"type", "bom-ref", *_COMPONENT_ORDER}
    if unknown:
        raise ValueError(f"XML writer: unknown component key {sorted(unknown)[0]!r}")
    for key in _COMPONENT_ORDER:
        if key not in c:
            continue
        value = c[key]
        if key in ("name", "version", "description", "purl"):
            _sub(el, key, value)
        elif key == "hashes":
            hashes = _sub(el, "hashes")
            for h in value:
                _sub(hashes, "hash", h["content"], alg=h["alg"])
        elif key == "licenses":
            _licenses(el, value)
        elif key == "externalReferences":
            refs = _sub(el, "externalReferences")
            for r in value:
                ref = _sub(refs, "reference", type=r["type"])
                _sub(ref, "url", r["url"])
                if "comment" in r:
                    _sub(ref, "comment", r["comment"])
        elif key == "properties":
            _properties(el, value)
        elif key == "modelCard":
            _model_card(el, value)
        elif key == "tags":
            tags = _sub(el, "tags")
            for t in value:
                _sub(tags, "tag", t)


def _licenses(parent: ET.Element, items: list[dict[str, Any]]) -> None:
    el = _sub(parent, "licenses")
    for item in items:
        if "expression" in item:
            _sub(el, "expression", item["expression"])
            continue
        lic = _sub(el, "license")
        if "id" in item["license"]:
            _sub(lic, "id", item["license"]["id"])
        else:
            _sub(lic, "name", item["license"]["name"])


def _properties(parent: ET.Element, props: list[dict[str, str]]) -> None:
    el = _sub(parent, "properties")
    for p in props:
        _sub(el, "property", p["value"], name=p["name"])


def _model_card(parent: ET.Element, card: dict[str, Any]) -> None:
    el = _sub(parent, "modelCard", **{"bom-ref": card.get("bom-ref", "model-card")})
    params = card.get("modelParameters")
    if params:
        mp = _sub(el, "modelParameters")
        if "approach" in params:
            _sub(_sub(mp, "approach"), "type", params["approach"]["type"])
        for key in ("task", "architectureFamily", "modelArchitecture"):
            if key in params:
                _sub(mp, key, params[key])
        if "datasets" in params:
            ds = _sub(mp, "datasets")
            for item in params["datasets"]:
                _sub(ds, "ref", item["ref"])
    qa = card.get("quantitativeAnalysis")
    if qa:
        pm = _sub(_sub(el, "quantitativeAnalysis"), "performanceMetrics")
        for m in qa.get("performanceMetrics", []):
            metric = _sub(pm, "performanceMetric")
            for key in ("type", "value", "slice"):
                if key in m:
                    _sub(metric, key, m[key])
    cons = card.get("considerations")
    if cons:
        ce = _sub(el, "considerations")
        for key, item in (("useCases", "useCase"), ("technicalLimitations", "technicalLimitation")):
            if key in cons:
                group = _sub(ce, key)
                for text in cons[key]:
                    _sub(group, item, text)
    if card.get("properties"):
        _properties(el, card["properties"])


def _vulnerability(parent: ET.Element, v: dict[str, Any]) -> None:
    el = _sub(parent, "vulnerability", **{"bom-ref": v["bom-ref"]})
    _sub(el, "id", v["id"])
    _source(el, v["source"])
    if v.get("references"):
        refs = _sub(el, "references")
        for r in v["references"]:
            ref = _sub(refs, "reference")
            _sub(ref, "id", r["id"])
            _source(ref, r["source"])
    if v.get("ratings"):
        ratings = _sub(el, "ratings")
        for r in v["ratings"]:
            rating = _sub(ratings, "rating")
            _source(rating, r["source"])
            _sub(rating, "severity", r["severity"])
    for key in ("description", "recommendation"):
        if v.get(key):
            _sub(el, key, v[key])
    affects = _sub(el, "affects")
    for a in v.get("affects", []):
        target = _sub(affects, "target")
        _sub(target, "ref", a["ref"])
        if a.get("versions"):
            versions = _sub(target, "versions")
            for ver in a["versions"]:
                _sub(_sub(versions, "version"), "version", ver["version"])


def _source(parent: ET.Element, src: dict[str, str]) -> None:
    el = _sub(parent, "source")
    if "name" in src:
        _sub(el, "name", src["name"])
    if "url" in src:
        _sub(el, "url", src["url"])
