"""Referrers: signatures and SBOMs attached to a model manifest through ``subject``.

The referrers API (``GET /v2/<name>/referrers/<digest>``) is used when the store has one; else the
distribution spec's tag-schema fallback: the tag ``sha256-<hex>`` of the subject holds an image
index listing the referrer manifests (with their ``artifactType`` and annotations), which
``attach`` reads, extends and pushes back. docker-registry 2.8 and layout directories use the
fallback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsec import __version__
from mlsec.errors import BundleError, RegistryError, UsageError, VerificationError
from mlsec.progress import NULL_PROGRESS
from mlsec.registry._base import created_annotation, fetch_manifest, store_for
from mlsec.registry.oci import (
    EMPTY_CONFIG,
    EMPTY_JSON,
    INDEX_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    SBOM_ARTIFACT_TYPE,
    SIGNATURE_ARTIFACT_TYPE,
    TITLE,
    VERSION_ANNOTATION,
    Descriptor,
    Index,
    Manifest,
    digest_bytes,
)
from mlsec.registry.reference import Reference, parse_reference
from mlsec.registry.store import NotFoundError, Store

if TYPE_CHECKING:
    from mlsec.artifact import Artifact

__all__ = [
    "AttachResult",
    "Referrer",
    "attach",
    "check_sbom_for",
    "check_signature_for",
    "contains_key_material",
    "fallback_tag",
    "read_attachment",
    "referrers",
]

MAX_REFERRER_SIZE = 64 * 1024 * 1024
# Names given to referrers written next to a pulled model (``DEST.sig``, ``DEST.cdx.json``).
_REFERRER_SUFFIX = {SIGNATURE_ARTIFACT_TYPE: "sig", SBOM_ARTIFACT_TYPE: "cdx.json"}


@dataclass(frozen=True, slots=True)
class AttachResult:
    """A referrer pushed for a subject; ``fallback_tag`` is set when the tag schema was used."""

    subject: str
    digest: str
    artifact_type: str
    fallback_tag: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "digest": self.digest,
            "artifact_type": self.artifact_type,
            "fallback_tag": self.fallback_tag,
        }


@dataclass(frozen=True, slots=True)
class Referrer:
    """A manifest whose ``subject`` is the model: its descriptor, type and annotations."""

    digest: str
    size: int
    artifact_type: str
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "size": self.size,
            "artifact_type": self.artifact_type,
            "annotations": dict(self.annotations),
        }


def plan_referrers(
    st: Store, subject: str, dest: Path, force: bool
) -> list[tuple[Path, Descriptor, Referrer]]:
    plan: list[tuple[Path, Descriptor, Referrer]] = []
    used: set[Path] = set()
    for r in _list_referrers(st, subject):
        data, _, _ = fetch_manifest(st, r.digest, f"referrer {r.digest}")
        m = Manifest.parse(data, f"referrer {r.digest}")
        if m.subject is None or m.subject.digest != subject:
            raise RegistryError(f"referrer {r.digest}: its subject is not {subject}")
        if len(m.layers) != 1 or m.layers[0].size > MAX_REFERRER_SIZE:
            continue  # not a single-file attachment of ours: listed, not written
        suffix = _attestation_suffix(m.annotations) or _REFERRER_SUFFIX.get(
            m.effective_artifact_type, f"{r.digest[7:19]}.referrer"
        )
        final = dest.parent / f"{dest.name}.{suffix}"
        n = 2
        while final in used:
            final = dest.parent / f"{dest.name}.{n}.{suffix}"
            n += 1
        if final.exists() and not force:
            raise RegistryError(f"{final}: exists", hint="use --force to replace it")
        used.add(final)
        plan.append((final, m.layers[0], r))
    return plan


def _attestation_suffix(annotations: Mapping[str, str]) -> str | None:
    """``scan.att`` / ``sbom.att`` / ``provenance.att`` (``att`` for another predicate) for a
    referrer pushed with ``push --attach``, so that it never takes the model signature's name."""
    from mlsec.attest import PREDICATE_ANNOTATION, kind_of

    ptype = annotations.get(PREDICATE_ANNOTATION)
    if not isinstance(ptype, str):
        return None
    kind = kind_of(ptype)
    return f"{kind.value}.att" if kind is not None else "att"


def fallback_tag(digest: str) -> str:
    """The referrers tag-schema fallback tag for a subject digest: ``sha256-<hex>``."""
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}-{hexpart}"


def _list_referrers(st: Store, subject: str) -> list[Referrer]:
    found = st.referrers(subject)
    if found is None:
        try:
            data, _, _ = fetch_manifest(st, fallback_tag(subject), f"referrers of {subject}")
        except NotFoundError:
            return []
        found = list(Index.parse(data, f"referrers tag {fallback_tag(subject)}").manifests)
    return [
        Referrer(d.digest, d.size, d.artifact_type or d.media_type, d.annotations) for d in found
    ]


def referrers(ref: str | Reference, *, store: Store | None = None) -> list[Referrer]:
    """The referrers (signatures, SBOMs, …) of the manifest at ``ref``.

    Uses the registry's referrers API when it has one, else the ``sha256-<hex>`` fallback tag.
    """
    reference = parse_reference(ref) if isinstance(ref, str) else ref
    with store_for(reference, store) as st:
        _, _, digest = fetch_manifest(st, reference.reference, str(reference))
        return _list_referrers(st, digest)


# Secrets that must never be published as a referrer (and written back as DEST.sig by a pull):
# PEM private keys of any kind (PKCS#1/#8, SEC1, encrypted, OpenSSH), age and PuTTY secret keys.
_KEY_MATERIAL = re.compile(
    rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----|AGE-SECRET-KEY-1|AGE-PLUGIN-[A-Z0-9-]*-1"
    rb"|PuTTY-User-Key-File-",
    re.IGNORECASE,
)


def contains_key_material(data: bytes) -> bool:
    """Whether ``data`` holds a private key of a kind mlsec recognises (PEM, age, PuTTY): such
    bytes are never published as a referrer, nor written beside a pulled model."""
    return _KEY_MATERIAL.search(data) is not None


def read_attachment(file: str | os.PathLike[str]) -> bytes:
    """The bytes of a file to attach, read with a cap whatever ``stat`` says; key material of
    any kind is refused (:class:`UsageError`, exit 2)."""
    from mlsec.ioutil import read_capped

    path = Path(file)
    content = read_capped(path, MAX_REFERRER_SIZE, what="file to attach", error=UsageError)
    if contains_key_material(content):
        raise UsageError(
            f"{path}: contains private key material; refusing to publish it",
            hint="attach the signature bundle (.sig) or the SBOM, never a key",
        )
    return content


class _Unchecked:
    """A verifier that trusts the envelope: used to ask only "is this bundle about this model?"
    before a push (whose signer is checked by whoever verifies the pulled model)."""

    method = "unchecked"

    def verify_signature(self, bundle: Any) -> tuple[bytes, str]:
        return bundle.payload, "unchecked"


def check_signature_for(
    content: bytes,
    name: str,
    model: str | os.PathLike[str] | Artifact,
    *,
    ignore: Iterable[str] = (),
    signature_path: str | os.PathLike[str] | None = None,
) -> None:
    """Raise :class:`UsageError` unless ``content`` is a model-signature bundle whose statement
    describes the model at ``model`` (every signed file present with its digest, nothing else).

    The signature itself is not checked against a key here: only that it is *this* model's.
    """
    from mlsec.signing.bundle import Bundle
    from mlsec.signing.verify import verify_model

    try:
        bundle = Bundle.from_json(content)
        verify_model(model, bundle, _Unchecked(), ignore=ignore, signature_path=signature_path)
    except BundleError as exc:
        raise UsageError(f"{name}: not a signature bundle: {exc.message}") from None
    except VerificationError as exc:
        raise UsageError(
            f"{name}: not a signature of {getattr(model, 'root', model)}: {_short(exc.message)}",
            hint="sign this model (mlsec sign) and attach that bundle",
        ) from None


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_sbom_for(content: bytes, name: str, artifact: Any, *, own: Iterable[str] = ()) -> None:
    """Raise :class:`UsageError` unless ``content`` is a CycloneDX JSON SBOM whose file
    components are exactly ``artifact``'s files with their SHA-256 (``own``: root-relative
    paths of the SBOM and signature themselves, which an SBOM cannot list)."""
    from mlsec.errors import SigningError
    from mlsec.jsonsafe import loads
    from mlsec.signing.sbom import compare_files

    try:
        bom = loads(content, name, SigningError, what="SBOM")
    except SigningError as exc:
        raise UsageError(exc.message) from None
    if not isinstance(bom, dict) or bom.get("bomFormat") != "CycloneDX":
        raise UsageError(f"{name}: not a CycloneDX JSON SBOM (bomFormat != CycloneDX)")
    skip = set(own)
    diffs = [
        d for d in compare_files(bom, artifact) if not (d.status == "extra" and d.path in skip)
    ]
    if diffs:
        raise UsageError(
            f"{name}: does not describe {artifact.root}: " + "; ".join(d.line() for d in diffs[:5]),
            hint="generate the SBOM for this model (mlsec sbom)",
        )


def attach(
    ref: str | Reference,
    file: str | os.PathLike[str],
    artifact_type: str,
    *,
    store: Store | None = None,
    annotations: Mapping[str, str] | None = None,
) -> AttachResult:
    """Push ``file`` as a referrer of the manifest at ``ref`` (its ``subject``).

    ``artifact_type`` is e.g. :data:`SIGNATURE_ARTIFACT_TYPE` or :data:`SBOM_ARTIFACT_TYPE`. When
    the store has no referrers API, the ``sha256-<hex>`` tag's image index is updated as well.
    """
    reference = parse_reference(ref) if isinstance(ref, str) else ref

    path = Path(file)
    content = read_attachment(path)
    layer = Descriptor(artifact_type, digest_bytes(content), len(content), {TITLE: path.name})
    with store_for(reference, store) as st:
        data, media_type, subject_digest = fetch_manifest(st, reference.reference, str(reference))
        subject = Descriptor(media_type, subject_digest, len(data))
        notes = {**created_annotation(), VERSION_ANNOTATION: __version__, **(annotations or {})}
        manifest = Manifest(EMPTY_CONFIG, (layer,), artifact_type, subject, notes)
        for desc, body in ((EMPTY_CONFIG, EMPTY_JSON), (layer, content)):
            if not st.has_blob(desc.digest):
                st.push_blob(desc, body, NULL_PROGRESS)
        mdata = manifest.to_bytes()
        mdigest = digest_bytes(mdata)
        st.push_manifest(mdata, MANIFEST_MEDIA_TYPE, None)
        api = st.referrers(subject_digest)
        if api is not None and any(d.digest == mdigest for d in api):
            return AttachResult(subject_digest, mdigest, artifact_type, None)
        tag = fallback_tag(subject_digest)
        try:
            idata, _, _ = fetch_manifest(st, tag, f"referrers tag {tag}")
            existing = Index.parse(idata, f"referrers tag {tag}")
        except NotFoundError:
            existing = Index(())
        entry = Descriptor(MANIFEST_MEDIA_TYPE, mdigest, len(mdata), notes, artifact_type)
        entries = (*tuple(d for d in existing.manifests if d.digest != mdigest), entry)
        st.push_manifest(Index(entries, existing.annotations).to_bytes(), INDEX_MEDIA_TYPE, tag)
    return AttachResult(subject_digest, mdigest, artifact_type, tag)
