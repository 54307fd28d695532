"""Signed SBOMs: an in-toto attestation whose subject is the model and whose predicate is a
CycloneDX JSON document.

Contract with the SBOM (``mlsec sbom`` writes it so; other generators can too): every file of
the model appears as a CycloneDX component (at any nesting depth) with ``"type": "file"``,
``"name"`` = the file's root-relative POSIX path, and a ``SHA-256`` hash. Verification requires
that these components describe exactly the model's files, and that the attestation's subject
digest equals the model's root digest (the same value a model signature carries).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from mlsec.artifact import Artifact, open_artifact, sort_key
from mlsec.errors import BundleError, SigningError, VerificationError
from mlsec.jsonsafe import loads
from mlsec.progress import Progress
from mlsec.signing.bundle import Bundle
from mlsec.signing.dsse import IN_TOTO_PAYLOAD_TYPE
from mlsec.signing.manifest import STATEMENT_TYPE, Manifest, resource_key
from mlsec.signing.signers import Signer
from mlsec.signing.verify import Difference, Verification, Verifier

__all__ = ["SBOM_PREDICATE_TYPE", "load_bom", "sign_sbom", "verify_sbom"]

SBOM_PREDICATE_TYPE = "https://cyclonedx.org/bom"


MAX_BOM_BYTES = 256 * 1024 * 1024


def load_bom(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a CycloneDX JSON document (one-line errors for anything else; at most 256 MiB)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BOM_BYTES + 1)
        if len(data) > MAX_BOM_BYTES:
            raise SigningError(f"{path}: larger than 256 MiB, not accepted as an SBOM")
    except OSError as exc:
        raise SigningError(f"{path}: cannot read: {exc.strerror or exc}") from None
    doc = loads(data, str(path), SigningError, what="SBOM")
    if not isinstance(doc, dict) or doc.get("bomFormat") != "CycloneDX":
        raise SigningError(f"{path}: not a CycloneDX JSON document (bomFormat != CycloneDX)")
    return doc


def _components(items: object) -> Iterator[dict[str, Any]]:
    if isinstance(items, list):
        for c in items:
            if isinstance(c, dict):
                yield c
                yield from _components(c.get("components"))


def bom_files(bom: dict[str, Any]) -> dict[str, str | None]:
    """``{path: sha256 or None}`` for every ``file`` component of ``bom``."""
    return dict(_file_entries(bom))


def _file_entries(bom: dict[str, Any]) -> Iterator[tuple[str, str | None]]:
    for c in _components(bom.get("components")):
        if c.get("type") != "file" or not isinstance(c.get("name"), str):
            continue
        digest = None
        for h in c.get("hashes") or []:
            if isinstance(h, dict) and h.get("alg") == "SHA-256":
                digest = str(h.get("content", "")).lower()
        yield c["name"], digest


def compare_files(bom: dict[str, Any], artifact: Artifact) -> list[Difference]:
    """How the SBOM's file components differ from the artifact's files (empty: they agree)."""
    listed = bom_files(bom)
    have = {f.path: f.sha256 for f in artifact.files}
    diffs: list[Difference] = []
    # A file listed twice (or as "./a" and "a") can be read two ways: never a match.
    seen: set[str] = set()
    for path, _digest in _file_entries(bom):
        key = resource_key(path)
        if key in seen:
            why = "listed more than once in the SBOM (ambiguous)"
            diffs.append(Difference(path, "invalid-name", reason=why))
        seen.add(key)
    for path, digest in listed.items():
        if path not in have:
            diffs.append(Difference(path, "missing", expected=digest, reason="listed in the SBOM"))
        elif digest is None:
            diffs.append(Difference(path, "invalid-name", reason="SBOM component has no SHA-256"))
        elif digest != have[path]:
            diffs.append(Difference(path, "changed", expected=digest, actual=have[path]))
    diffs.extend(Difference(p, "extra", reason="not in the SBOM") for p in have if p not in listed)
    diffs.sort(key=lambda d: sort_key(d.path))
    return diffs


def _open(
    model: str | os.PathLike[str],
    ignore: Iterable[str],
    bom_path: str | os.PathLike[str],
    signature_path: str | os.PathLike[str] | None,
) -> Artifact:
    # An SBOM (or its signature) kept inside the model cannot describe itself: leave both out.
    own = [os.path.abspath(p) for p in (bom_path, signature_path) if p is not None]
    return open_artifact(model, ignore=(*ignore, *own))


def _statement(bom: dict[str, Any], artifact: Artifact) -> bytes:
    digest = Manifest.from_artifact(artifact).root_digest
    doc = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": artifact.name, "digest": {"sha256": digest}}],
        "predicateType": SBOM_PREDICATE_TYPE,
        "predicate": bom,
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def sign_sbom(
    bom_path: str | os.PathLike[str],
    model: str | os.PathLike[str],
    signer: Signer,
    *,
    ignore: Iterable[str] = (),
    signature_path: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> Bundle:
    """Sign the SBOM at ``bom_path`` as an attestation about the model at ``model``.

    Refuses an SBOM whose file components do not describe the model's files exactly.
    """
    bom = load_bom(bom_path)
    art = _open(model, ignore, bom_path, signature_path).with_digests(progress=progress)
    diffs = compare_files(bom, art)
    if diffs:
        raise SigningError(
            f"{bom_path}: does not describe {model}: " + "; ".join(d.line() for d in diffs),
            hint="regenerate the SBOM for this model",
        )
    return signer.sign(_statement(bom, art), IN_TOTO_PAYLOAD_TYPE)


@dataclass(frozen=True)
class _Parsed:
    subject_digest: str
    predicate: object


def _parse(payload: bytes) -> _Parsed:
    try:
        doc = loads(payload, "attestation", BundleError)
    except BundleError as exc:
        if "duplicate key" in exc.message:  # signed JSON two readers can read two ways
            raise VerificationError(f"ambiguous signed {exc.message}") from None
        raise
    if not isinstance(doc, dict) or doc.get("_type") != STATEMENT_TYPE:
        raise BundleError("attestation: not an in-toto Statement v1")
    if doc.get("predicateType") != SBOM_PREDICATE_TYPE:
        raise VerificationError(
            f"attestation: predicateType is {doc.get('predicateType')!r}, "
            f"not {SBOM_PREDICATE_TYPE} (is this a model signature rather than an SBOM one?)"
        )
    subjects = doc.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise BundleError("attestation: expected exactly one subject")
    digest = (subjects[0].get("digest") or {}).get("sha256")
    if not isinstance(digest, str):
        raise BundleError("attestation: subject has no sha256 digest")
    return _Parsed(digest.lower(), doc.get("predicate"))


def verify_sbom(
    bom_path: str | os.PathLike[str],
    model: str | os.PathLike[str],
    bundle: Bundle,
    verifier: Verifier,
    *,
    ignore: Iterable[str] = (),
    signature_path: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> Verification:
    """Check the SBOM attestation: signature, predicate == the BOM, subject == the model's root
    digest, and the BOM's file components == the model's files. Raises on any failure."""
    payload, signer = verifier.verify_signature(bundle)
    if bundle.payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise VerificationError(f"payload type is {bundle.payload_type!r}, not in-toto")
    parsed = _parse(payload)
    bom = load_bom(bom_path)
    if parsed.predicate != bom:
        raise VerificationError(f"{bom_path}: differs from the SBOM that was signed")
    art = _open(model, ignore, bom_path, signature_path).with_digests(progress=progress)
    root = Manifest.from_artifact(art).root_digest
    diffs = compare_files(bom, art)
    if parsed.subject_digest != root:
        diffs.insert(
            0,
            Difference(
                ".",
                "changed",
                expected=parsed.subject_digest,
                actual=root,
                reason="model root digest differs from the attestation subject",
            ),
        )
    result = Verification(
        model=str(model),
        method=verifier.method,
        signer=signer,
        root_digest=root,
        files=len(art.files),
        differences=tuple(diffs),
        caller_ignores=tuple(ignore),
        notes=(f"SBOM attestation ({SBOM_PREDICATE_TYPE}) for {bom_path}",),
    )
    if not result.ok:
        raise VerificationError(result.summary(), result=result)
    return result
