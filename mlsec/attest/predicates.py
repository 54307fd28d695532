"""The three predicates: mlsec scan verdict v1, CycloneDX BOM, SLSA provenance v1.

Each has a builder (used by ``attest``) and a checker returning a short summary (used by
``verify --attestation``); a checker raises :class:`BundleError` for a predicate that is not
well formed or not self-consistent (a scan verdict whose findings digest or counts do not match).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any

from mlsec import __version__
from mlsec.errors import BundleError, UsageError
from mlsec.scan.model import ScanReport, Severity

__all__ = [
    "PROVENANCE_BUILD_TYPE",
    "PROVENANCE_PREDICATE_TYPE",
    "SBOM_PREDICATE_TYPE",
    "SCAN_PREDICATE_TYPE",
    "Kind",
    "findings_digest",
    "kind_of",
    "load_provenance",
    "provenance_predicate",
    "ruleset_digest",
    "scan_predicate",
    "summarize",
]

SCAN_PREDICATE_TYPE = "https://mlsec.dev/attestation/scan/v1"
SBOM_PREDICATE_TYPE = "https://cyclonedx.org/bom"
PROVENANCE_PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
PROVENANCE_BUILD_TYPE = "https://mlsec.dev/attestation/provenance/flags/v1"

MAX_PREDICATE_BYTES = 64 * 1024 * 1024


class Kind(StrEnum):
    """``attest --type`` values."""

    SCAN = "scan"
    SBOM = "sbom"
    PROVENANCE = "provenance"


_TYPES = {
    Kind.SCAN: SCAN_PREDICATE_TYPE,
    Kind.SBOM: SBOM_PREDICATE_TYPE,
    Kind.PROVENANCE: PROVENANCE_PREDICATE_TYPE,
}


def predicate_type(kind: Kind) -> str:
    return _TYPES[kind]


def kind_of(ptype: str) -> Kind | None:
    """The attestation kind of a predicate type, None for another one."""
    for k, t in _TYPES.items():
        if t == ptype:
            return k
    return None


def _canonical(value: Any) -> bytes:
    # Sorted keys, no whitespace, UTF-8: the findings hold strings, integers and nulls only, for
    # which this is the RFC 8785 (JCS) encoding.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def findings_digest(findings: Sequence[Mapping[str, Any]]) -> str:
    """SHA-256 (hex) of the canonical JSON of the findings list."""
    return hashlib.sha256(_canonical(list(findings))).hexdigest()


def ruleset_digest(allow_globals: Iterable[str] = ()) -> str:
    """SHA-256 (hex) over the pickle rule lists (deny, allow, aliases) and the caller's extra
    allowed globals: two scans with one digest judged globals by the same lists."""
    from mlsec.scan.pickle import lists

    doc = {
        "aliases": sorted(lists.ALIASES.items()),
        "allow": sorted(lists.ALLOW_EXACT),
        "class_packages": list(lists.CLASS_PACKAGES),
        "dangerous_attrs": sorted(lists.DANGEROUS_ATTRS),
        "deny_modules": sorted(lists.DENY_MODULES),
        "deny_names": sorted(lists.DENY_NAMES),
        "extra_allow": sorted(allow_globals),
        "loads_like": sorted(lists.LOADS_LIKE),
        "reflective_attrs": sorted(lists.REFLECTIVE_ATTRS),
    }
    return hashlib.sha256(_canonical(doc)).hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def scan_predicate(
    report: ScanReport,
    fail_on: Severity,
    *,
    allow_globals: Iterable[str] = (),
    scanned_at: str | None = None,
) -> dict[str, Any]:
    """The ``https://mlsec.dev/attestation/scan/v1`` predicate of a scan this process ran."""
    findings = [f.to_dict() for f in report.findings]
    extra = sorted(allow_globals)
    pred: dict[str, Any] = {
        "engine": {"name": "mlsec", "version": __version__, "engines": list(report.engines)},
        "ruleset": {"version": __version__, "digest": {"sha256": ruleset_digest(extra)}},
        "options": {"allowGlobals": extra},
        "threshold": fail_on.value,
        "verdict": "fail" if report.failed(fail_on) else "pass",
        "scannedAt": scanned_at or _now(),
        "summary": {
            "files": len(report.files),
            "findings": report.counts(),
            "maxSeverity": report.max_severity.value if report.max_severity else None,
            "suppressed": len(report.suppressed),
        },
        "findingsDigest": {"sha256": findings_digest(findings)},
        "findings": findings,
    }
    if report.suppressed:
        pred["suppressed"] = [
            {**f.to_dict(), "suppression": s.to_dict()} for f, s in report.suppressed
        ]
    return pred


def _check_scan(p: object) -> dict[str, Any]:
    if not isinstance(p, dict):
        raise BundleError("scan predicate: not a JSON object")
    findings = p.get("findings")
    if not isinstance(findings, list) or not all(isinstance(f, dict) for f in findings):
        raise BundleError("scan predicate: findings is not a list of objects")
    fd = p.get("findingsDigest")
    digest = fd.get("sha256") if isinstance(fd, dict) else None
    if digest != findings_digest(findings):
        raise BundleError("scan predicate: findingsDigest does not match the findings")
    try:
        threshold = Severity(str(p.get("threshold")))
        sevs = [Severity(str(f.get("severity"))) for f in findings]
    except ValueError:
        raise BundleError("scan predicate: unknown severity in threshold or findings") from None
    counts = {s.value: 0 for s in Severity}
    for s in sevs:
        counts[s.value] += 1
    summary = p.get("summary")
    if not isinstance(summary, dict) or summary.get("findings") != counts:
        raise BundleError("scan predicate: summary counts do not match the findings")
    verdict = "fail" if any(s.at_least(threshold) for s in sevs) else "pass"
    if p.get("verdict") != verdict:
        raise BundleError(
            f"scan predicate: verdict {p.get('verdict')!r} does not follow from the findings"
            f" at threshold {threshold.value} ({verdict})"
        )
    engine = p.get("engine")
    if not isinstance(engine, dict):
        engine = {}
    return {
        "verdict": verdict,
        "threshold": threshold.value,
        "findings": counts,
        "engine": f"{engine.get('name')} {engine.get('version')}",
        "scanned_at": p.get("scannedAt"),
    }


def _check_sbom(p: object) -> dict[str, Any]:
    if not isinstance(p, dict) or p.get("bomFormat") != "CycloneDX":
        raise BundleError("SBOM predicate: not a CycloneDX JSON document")
    from mlsec.signing.sbom import bom_files

    return {
        "spec_version": p.get("specVersion"),
        "serial_number": p.get("serialNumber"),
        "files": len(bom_files(p)),
        "components": len(p.get("components") or []),
    }


def _check_provenance(p: object) -> dict[str, Any]:
    if not isinstance(p, dict):
        raise BundleError("provenance predicate: not a JSON object")
    bd, rd = p.get("buildDefinition"), p.get("runDetails")
    if not isinstance(bd, dict) or not isinstance(bd.get("buildType"), str):
        raise BundleError("provenance predicate: buildDefinition.buildType is missing")
    if not isinstance(bd.get("externalParameters"), dict):
        raise BundleError("provenance predicate: buildDefinition.externalParameters is missing")
    builder = rd.get("builder") if isinstance(rd, dict) else None
    if not isinstance(builder, dict) or not isinstance(builder.get("id"), str):
        raise BundleError("provenance predicate: runDetails.builder.id is missing")
    deps = bd.get("resolvedDependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, dict) for d in deps):
        raise BundleError("provenance predicate: resolvedDependencies is not a list of objects")
    return {
        "builder": builder["id"],
        "build_type": bd["buildType"],
        "dependencies": [d.get("uri") or d.get("name") for d in deps],
    }


def summarize(ptype: str, predicate: object) -> dict[str, Any]:
    """Check a known predicate and return its short summary; ``{}`` for another type."""
    match kind_of(ptype):
        case Kind.SCAN:
            return _check_scan(predicate)
        case Kind.SBOM:
            return _check_sbom(predicate)
        case Kind.PROVENANCE:
            return _check_provenance(predicate)
        case None:
            return {}


_DATASET_DIGEST = re.compile(r"^(?P<uri>.+)@sha256:(?P<hex>[0-9a-fA-F]{64})$")


def _dependency(value: str, what: str) -> dict[str, Any]:
    if not value.strip():
        raise UsageError(f"{what}: empty value")
    m = _DATASET_DIGEST.match(value)
    if m:
        return {"uri": m["uri"], "digest": {"sha256": m["hex"].lower()}}
    return {"uri": value}


def provenance_predicate(
    builder_id: str,
    *,
    source: str | None = None,
    datasets: Sequence[str] = (),
    started_on: str | None = None,
) -> dict[str, Any]:
    """A SLSA provenance v1 predicate from flags; ``datasets`` entries are ``URI`` or
    ``URI@sha256:HEX``."""
    if not builder_id.strip():
        raise UsageError("--builder-id: empty value")
    deps = []
    params: dict[str, Any] = {}
    if source:
        deps.append(_dependency(source, "--source"))
        params["source"] = source
    data = [_dependency(d, "--dataset") for d in datasets]
    if data:
        params["datasets"] = [d["uri"] for d in data]
    deps.extend(data)
    meta: dict[str, Any] = {"startedOn": started_on or _now()}
    return {
        "buildDefinition": {
            "buildType": PROVENANCE_BUILD_TYPE,
            "externalParameters": params,
            "resolvedDependencies": deps,
        },
        "runDetails": {"builder": {"id": builder_id}, "metadata": meta},
    }


def load_provenance(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A SLSA provenance v1 predicate read from a JSON file (bounded; checked for shape)."""
    from mlsec.ioutil import read_capped
    from mlsec.jsonsafe import loads

    data = read_capped(path, MAX_PREDICATE_BYTES, what="predicate file", error=UsageError)
    doc = loads(data, str(path), UsageError, what="predicate")
    if isinstance(doc, dict) and "_type" in doc and "predicate" in doc:
        raise UsageError(
            f"{path}: is an in-toto statement, not a predicate",
            hint="give the statement's predicate object only; mlsec writes the subject itself",
        )
    try:
        _check_provenance(doc)
    except BundleError as exc:
        raise UsageError(f"{path}: {exc.message}") from None
    assert isinstance(doc, dict)
    return doc
