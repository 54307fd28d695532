"""The OCI artifact model: media types, descriptors, manifests and indexes, parsed strictly.

A model is stored as an OCI image-spec 1.1 artifact, the way ORAS stores files:

* ``artifactType``: :data:`MODEL_ARTIFACT_TYPE` (``application/vnd.mlsec.model.v1``);
* ``config``: the empty descriptor (``application/vnd.oci.empty.v1+json``, the 2-byte ``{}``);
* one layer per file, media type :data:`FILE_MEDIA_TYPE`, annotated with
  ``org.opencontainers.image.title`` = the file's root-relative POSIX path and
  ``dev.mlsec.file.format`` = the format mlsec detected;
* manifest annotations: ``dev.mlsec.version``, ``org.opencontainers.image.created`` only with
  ``SOURCE_DATE_EPOCH`` (a re-push gives the same digest), and
  ``dev.mlsec.kind`` (``file`` or ``directory``).

Everything read from a store is parsed here into a validated object or refused with a
:class:`~mlsec.errors.RegistryError`: only ``sha256`` digests (they name files on disk), sizes that
are non-negative integers, a bounded manifest size and layer count.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlsec.errors import RegistryError

__all__ = [
    "EMPTY_CONFIG",
    "EMPTY_JSON",
    "FILE_MEDIA_TYPE",
    "INDEX_MEDIA_TYPE",
    "MANIFEST_MEDIA_TYPE",
    "MAX_LAYERS",
    "MAX_MANIFEST_SIZE",
    "MODEL_ARTIFACT_TYPE",
    "SBOM_ARTIFACT_TYPE",
    "SIGNATURE_ARTIFACT_TYPE",
    "Descriptor",
    "Index",
    "Manifest",
    "check_digest",
    "digest_bytes",
]

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
MODEL_ARTIFACT_TYPE = "application/vnd.mlsec.model.v1"
FILE_MEDIA_TYPE = "application/vnd.mlsec.model.file.v1"
SIGNATURE_ARTIFACT_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
SBOM_ARTIFACT_TYPE = "application/vnd.cyclonedx+json"

TITLE = "org.opencontainers.image.title"
CREATED = "org.opencontainers.image.created"
REF_NAME = "org.opencontainers.image.ref.name"
VERSION_ANNOTATION = "dev.mlsec.version"
KIND_ANNOTATION = "dev.mlsec.kind"
FORMAT_ANNOTATION = "dev.mlsec.file.format"

# The distribution spec asks registries to accept manifests of at least 4 MiB; we read no more.
MAX_MANIFEST_SIZE = 4 * 1024 * 1024
MAX_LAYERS = 100_000

EMPTY_JSON = b"{}"
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


def digest_bytes(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(value: object, what: str = "digest") -> str:
    """``value`` if it is a ``sha256:<64 lowercase hex>`` digest, else :class:`RegistryError`.

    Only sha256 is accepted: digests name blob files in a layout store, so a free-form value
    could name a path outside it.
    """
    if not isinstance(value, str) or not _DIGEST_RE.fullmatch(value):
        raise RegistryError(f"{what}: not a sha256 digest: {str(value)[:80]!r}")
    return value


@dataclass(frozen=True, slots=True)
class Descriptor:
    """An OCI content descriptor: what a blob or manifest is, its digest and its size."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None

    @property
    def title(self) -> str | None:
        """The ``org.opencontainers.image.title`` annotation (a layer's file path), if any."""
        return self.annotations.get(TITLE)

    @property
    def hex(self) -> str:
        """The digest without its ``sha256:`` prefix."""
        return self.digest.split(":", 1)[1]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type:
            d["artifactType"] = self.artifact_type
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        return d

    @classmethod
    def from_dict(cls, obj: object, what: str = "descriptor") -> Descriptor:
        """Parse and validate a descriptor object."""
        if not isinstance(obj, dict):
            raise RegistryError(f"{what}: not an object")
        media_type = obj.get("mediaType")
        if not isinstance(media_type, str) or not media_type:
            raise RegistryError(f"{what}: missing mediaType")
        digest = check_digest(obj.get("digest"), what)
        size = obj.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise RegistryError(f"{what}: size is not a non-negative integer")
        annotations = _annotations(obj.get("annotations"), what)
        artifact_type = obj.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise RegistryError(f"{what}: artifactType is not a string")
        return cls(media_type, digest, size, annotations, artifact_type)


EMPTY_CONFIG = Descriptor(EMPTY_MEDIA_TYPE, digest_bytes(EMPTY_JSON), len(EMPTY_JSON))


def _annotations(obj: object, what: str) -> dict[str, str]:
    if obj is None:
        return {}
    if not isinstance(obj, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in obj.items()
    ):
        raise RegistryError(f"{what}: annotations are not a string map")
    return dict(obj)


def _load(data: bytes, what: str) -> dict[str, Any]:
    if len(data) > MAX_MANIFEST_SIZE:
        raise RegistryError(f"{what}: larger than {MAX_MANIFEST_SIZE} bytes")
    from mlsec.jsonsafe import loads

    obj = loads(data, what, RegistryError)
    if not isinstance(obj, dict):
        raise RegistryError(f"{what}: not a JSON object")
    if obj.get("schemaVersion") != 2:
        raise RegistryError(f"{what}: schemaVersion is not 2")
    return obj


def _dump(obj: dict[str, Any]) -> bytes:
    # Canonical enough to be reproducible; the bytes pushed are the bytes digested.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class Manifest:
    """An OCI image manifest (``application/vnd.oci.image.manifest.v1+json``)."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    artifact_type: str | None = None
    subject: Descriptor | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """The manifest's JSON bytes (what is pushed and digested)."""
        obj: dict[str, Any] = {"schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE}
        if self.artifact_type:
            obj["artifactType"] = self.artifact_type
        obj["config"] = self.config.to_dict()
        obj["layers"] = [layer.to_dict() for layer in self.layers]
        if self.subject is not None:
            obj["subject"] = self.subject.to_dict()
        if self.annotations:
            obj["annotations"] = dict(self.annotations)
        # Never write what ``parse`` (so every pull) refuses: fail before anything is uploaded.
        if len(self.layers) > MAX_LAYERS:
            raise RegistryError(
                f"manifest: {len(self.layers)} files, more than the {MAX_LAYERS} a pull accepts",
                hint="pack the model into fewer files (e.g. a tar archive) before pushing",
            )
        data = _dump(obj)
        if len(data) > MAX_MANIFEST_SIZE:
            raise RegistryError(
                f"manifest: {len(data)} bytes for {len(self.layers)} files, larger than the"
                f" {MAX_MANIFEST_SIZE} bytes a pull accepts",
                hint="pack the model into fewer files (e.g. a tar archive) before pushing",
            )
        return data

    @classmethod
    def parse(cls, data: bytes, what: str = "manifest") -> Manifest:
        """Parse and validate manifest bytes; :class:`RegistryError` if malformed."""
        obj = _load(data, what)
        media_type = obj.get("mediaType", MANIFEST_MEDIA_TYPE)
        if media_type != MANIFEST_MEDIA_TYPE:
            raise RegistryError(f"{what}: not an OCI image manifest (mediaType {media_type!r})")
        config = Descriptor.from_dict(obj.get("config"), f"{what}: config")
        layers_obj = obj.get("layers")
        if not isinstance(layers_obj, list):
            raise RegistryError(f"{what}: layers is not a list")
        if len(layers_obj) > MAX_LAYERS:
            raise RegistryError(f"{what}: more than {MAX_LAYERS} layers")
        layers = tuple(
            Descriptor.from_dict(x, f"{what}: layer {i}") for i, x in enumerate(layers_obj)
        )
        subject = obj.get("subject")
        artifact_type = obj.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise RegistryError(f"{what}: artifactType is not a string")
        return cls(
            config=config,
            layers=layers,
            artifact_type=artifact_type,
            subject=None if subject is None else Descriptor.from_dict(subject, f"{what}: subject"),
            annotations=_annotations(obj.get("annotations"), what),
        )

    @property
    def effective_artifact_type(self) -> str:
        """``artifactType``, else the config media type (the image-spec's rule)."""
        return self.artifact_type or self.config.media_type


@dataclass(frozen=True, slots=True)
class Index:
    """An OCI image index: used for ``index.json`` and for the referrers tag-schema fallback."""

    manifests: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """The index's JSON bytes."""
        obj: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": [m.to_dict() for m in self.manifests],
        }
        if self.annotations:
            obj["annotations"] = dict(self.annotations)
        data = _dump(obj)
        if len(data) > MAX_MANIFEST_SIZE or len(self.manifests) > MAX_LAYERS:
            raise RegistryError(
                f"index: {len(self.manifests)} entries, larger than an index a reader accepts"
            )
        return data

    @classmethod
    def parse(cls, data: bytes, what: str = "index") -> Index:
        """Parse and validate image-index bytes; :class:`RegistryError` if malformed."""
        obj = _load(data, what)
        media_type = obj.get("mediaType", INDEX_MEDIA_TYPE)
        if media_type != INDEX_MEDIA_TYPE:
            raise RegistryError(f"{what}: not an OCI image index (mediaType {media_type!r})")
        items = obj.get("manifests")
        if not isinstance(items, list):
            raise RegistryError(f"{what}: manifests is not a list")
        if len(items) > MAX_LAYERS:
            raise RegistryError(f"{what}: more than {MAX_LAYERS} entries")
        return cls(
            tuple(Descriptor.from_dict(x, f"{what}: entry {i}") for i, x in enumerate(items)),
            _annotations(obj.get("annotations"), what),
        )
