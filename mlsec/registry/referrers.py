"""Referrers: signatures and SBOMs attached to a model manifest through ``subject``.

The referrers API (``GET /v2/<name>/referrers/<digest>``) is used when the store has one; else the
distribution spec's tag-schema fallback: the tag ``sha256-<hex>`` of the subject holds an image
index listing the referrer manifests (with their ``artifactType`` and annotations), which
``attach`` reads, extends and pushes back. docker-registry 2.8 and layout directories use the
fallback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlsec import __version__
from mlsec.errors import RegistryError
from mlsec.progress import NULL_PROGRESS
from mlsec.registry._base import fetch_manifest, now, store_for
from mlsec.registry.oci import (
    CREATED,
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

__all__ = ["AttachResult", "Referrer", "attach", "fallback_tag", "referrers"]

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
        suffix = _REFERRER_SUFFIX.get(m.effective_artifact_type, f"{r.digest[7:19]}.referrer")
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
    from mlsec.ioutil import read_capped

    path = Path(file)
    content = read_capped(path, MAX_REFERRER_SIZE, what="referrer", error=RegistryError)
    layer = Descriptor(artifact_type, digest_bytes(content), len(content), {TITLE: path.name})
    with store_for(reference, store) as st:
        data, media_type, subject_digest = fetch_manifest(st, reference.reference, str(reference))
        subject = Descriptor(media_type, subject_digest, len(data))
        notes = {CREATED: now(), VERSION_ANNOTATION: __version__, **(annotations or {})}
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
