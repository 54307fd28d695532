"""Evidence: everything ``admit`` knows about a model, as one JSON-serialisable document.

The same document is what ``mlsec admit --format json`` prints under ``evidence``, what policies
are evaluated over, and what a person reads to understand a denial. Gathering runs every
capability over the model once: the walk is shared, and each file is hashed once even though
signature verification walks the model its own way, reusing the digests of the one Artifact.

Failures of the *evidence* — a signature that does not verify, a malformed bundle or SBOM, an SBOM
that does not describe these files, a malformed model card — are recorded in the document (and
the policy decides); failures of the *operator* — a missing model, an unreadable key — raise.

Schema ``mlsec/evidence/v1``::

    {"schema", "artifact": {path, kind, file_count, total_size, formats: {format: count}, files},
     "scan": {max_severity, counts, findings},
     "signature": {given, path, verified, method, signer, root_digest, error, differences},
     "sbom": {given, path, source, matches_files, differences, error, audited, vulnerabilities},
     "model": {name, licenses, datasets, task, architecture, base_models, error}}
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsec.artifact import open_artifact
from mlsec.errors import BundleError, MlsecError, SigningError, VerificationError
from mlsec.policy.evaluate import SEVERITY_RANK
from mlsec.progress import Progress
from mlsec.schemas import Schema

if TYPE_CHECKING:
    from mlsec.artifact import Artifact
    from mlsec.ignore import IgnoreFile
    from mlsec.scan import ScanOptions, ScanReport
    from mlsec.signing.verify import Verifier

__all__ = ["SCHEMA", "gather"]

SCHEMA = Schema.EVIDENCE


def gather(
    path: str | os.PathLike[str],
    *,
    signature: str | os.PathLike[str] | None = None,
    verifier: Verifier | None = None,
    sbom: str | os.PathLike[str] | None = None,
    audit: bool = False,
    osv_url: str | None = None,
    allow_globals: Sequence[str] = (),
    progress: Progress | None = None,
    ignore: IgnoreFile | None = None,
    scanner: Callable[[Artifact, ScanOptions], ScanReport] | None = None,
) -> dict[str, Any]:
    """Collect the evidence about the model at ``path``.

    ``scanner`` replaces :func:`mlsec.scan.scan` (``mlsec fleet`` reuses stored per-file findings).

    ``ignore`` (an ignore file) moves the findings and vulnerabilities it accepts aside: they stay
    in the evidence (``scan.suppressed``, a vulnerability's ``suppressed``) but no rule counts them.

    ``signature`` is verified with ``verifier`` (both or neither). ``sbom`` is checked against
    the model's files and supplies the vulnerabilities; without one, ``audit`` builds an SBOM
    in-process and audits its dependencies (pip-audit, fails closed).
    """
    from mlsec.scan import ScanOptions, scan

    if (signature is None) != (verifier is None):
        raise ValueError("a signature and a verifier go together")
    root = Path(path)
    # Files given as evidence are not part of the model they describe.
    leave_out = [os.path.abspath(p) for p in (signature, sbom) if p is not None]
    # One walk and one hash per file: every capability below is handed ``art``.
    art = open_artifact(root, ignore=leave_out, digests=True, progress=progress)
    report = (scanner or scan)(art, ScanOptions(allow_globals=frozenset(allow_globals)))
    if ignore is not None:
        report = report.with_ignore(ignore, {f.path: f.sha256 or "" for f in art.files})
    scan_doc: dict[str, Any] = {
        "max_severity": report.max_severity.value if report.max_severity else None,
        "counts": report.counts(),
        "findings": [f.to_dict() for f in report.findings],
    }
    if ignore is not None:
        scan_doc["suppressed"] = [
            {**f.to_dict(), "suppression": s.to_dict()} for f, s in report.suppressed
        ]
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "artifact": _artifact(art),
        "scan": scan_doc,
        "signature": _signature(art, signature, verifier, progress),
        "sbom": _sbom(art, sbom, audit, osv_url),
        "model": _model(art),
    }
    if ignore is not None:
        for v in doc["sbom"]["vulnerabilities"]:
            found = ignore.suppression_for_vulnerability([v["id"], *v.get("aliases", ())])
            if found is not None:
                v["suppressed"] = found.to_dict()
        doc["ignore"] = ignore.summary()
    return doc


def _artifact(art: Artifact) -> dict[str, Any]:
    d = art.to_dict()
    d["formats"] = dict(sorted(Counter(f.format.value for f in art.files).items()))
    return d


def _signature(
    art: Artifact,
    signature: str | os.PathLike[str] | None,
    verifier: Verifier | None,
    progress: Progress | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "given": signature is not None,
        "path": os.fspath(signature) if signature is not None else None,
        "verified": None,
        "method": verifier.method if verifier is not None else None,
        "signer": None,
        "root_digest": None,
        "error": None,
        "differences": [],
    }
    if signature is None or verifier is None:
        return out
    from mlsec.signing import Bundle, verify_model

    try:
        sig = Path(signature)
        bundle = Bundle.from_file(sig)
        result = verify_model(art, bundle, verifier, signature_path=sig, progress=progress)
    except OSError as exc:
        raise SigningError(f"{signature}: cannot read: {exc.strerror or exc}") from None
    except VerificationError as exc:
        out["verified"] = False
        out["error"] = exc.message
        detail = getattr(exc.result, "differences", ())
        out["differences"] = [d.to_dict() for d in detail]
        return out
    except BundleError as exc:
        out["verified"] = False
        out["error"] = f"malformed signature bundle: {exc.message}"
        return out
    out.update(
        verified=True,
        signer=result.signer,
        root_digest=f"sha256:{result.root_digest}" if result.root_digest else None,
    )
    return out


def _sbom(
    art: Artifact, sbom: str | os.PathLike[str] | None, audit: bool, osv_url: str | None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "given": sbom is not None,
        "path": os.fspath(sbom) if sbom is not None else None,
        "source": None,
        "matches_files": None,
        "differences": [],
        "error": None,
        "audited": False,
        "vulnerabilities": [],
        "unauditable": [],
    }
    if sbom is not None:
        from mlsec.signing.sbom import compare_files, load_bom

        try:
            bom = load_bom(sbom)
        except SigningError as exc:
            out["error"] = exc.message
            out["matches_files"] = False
            return out
        out["source"] = "given"
        diffs = compare_files(bom, art)
        out["matches_files"] = not diffs
        out["differences"] = [d.to_dict() for d in diffs]
        out["vulnerabilities"] = _bom_vulnerabilities(bom)
        out["audited"] = bool(bom.get("vulnerabilities")) or _has_audit_property(bom)
        out["unauditable"] = _bom_unauditable(bom)
        return out
    if audit:
        from mlsec.sbom.api import make_sbom

        built = make_sbom(art, audit=True, osv_url=osv_url)  # SbomError (exit 2) if it cannot
        out["source"] = "generated"
        out["audited"] = True
        out["vulnerabilities"] = [v.to_dict() for v in built.vulnerabilities]
        out["unauditable"] = _bom_unauditable(built.document)
    return out


def _bom_unauditable(bom: dict[str, Any]) -> list[dict[str, Any]]:
    """Libraries the SBOM marks ``mlsec:unauditable`` (no service could audit them)."""
    out = []
    for c in bom.get("components") or []:
        if not isinstance(c, dict) or c.get("type") != "library":
            continue
        for p in c.get("properties") or []:
            if isinstance(p, dict) and p.get("name") == "mlsec:unauditable":
                out.append(
                    {"name": c.get("name"), "version": c.get("version"), "reason": p.get("value")}
                )
    return out


def _has_audit_property(bom: dict[str, Any]) -> bool:
    props = (bom.get("metadata") or {}).get("properties") or []
    return any(isinstance(p, dict) and p.get("name") == "mlsec:audited" for p in props)


def _bom_vulnerabilities(bom: dict[str, Any]) -> list[dict[str, Any]]:
    """The SBOM's vulnerabilities in the shape ``mlsec.sbom.audit.Vulnerability.to_dict`` has."""
    names: dict[str, tuple[str, str | None]] = {}
    for c in bom.get("components") or []:
        if isinstance(c, dict) and isinstance(c.get("bom-ref"), str):
            names[c["bom-ref"]] = (str(c.get("name", "")), c.get("version"))
    out = []
    for v in bom.get("vulnerabilities") or []:
        if not isinstance(v, dict) or not isinstance(v.get("id"), str):
            continue
        severities = [
            str(r.get("severity")).lower()
            for r in v.get("ratings") or []
            if isinstance(r, dict) and str(r.get("severity", "")).lower() in SEVERITY_RANK
        ]
        severity = max(severities, key=SEVERITY_RANK.__getitem__) if severities else None
        aliases = [r["id"] for r in v.get("references") or [] if isinstance(r, dict) and "id" in r]
        for target in v.get("affects") or [{}]:
            ref = target.get("ref") if isinstance(target, dict) else None
            package, version = names.get(ref or "", (None, None))
            out.append(
                {
                    "id": v["id"],
                    "aliases": aliases,
                    "package": package,
                    "version": version,
                    "severity": severity,
                }
            )
    return out


def _model(art: Artifact) -> dict[str, Any]:
    from mlsec.sbom.card import read_model_card

    out: dict[str, Any] = {"name": art.name, "error": None}
    try:
        card = read_model_card(art.root) if art.is_dir else None
    except MlsecError as exc:
        out["error"] = exc.message
        card = None
    out.update(
        name=(card.name if card and card.name else art.name),
        licenses=list(card.licenses) if card else [],
        datasets=list(card.datasets) if card else [],
        task=card.task if card else None,
        architecture=card.architecture if card else None,
        base_models=list(card.base_models) if card else [],
    )
    return out
