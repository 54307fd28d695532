"""Push and pull models to and from OCI registries and OCI image-layout directories.

A model is an OCI image-spec 1.1 artifact (``artifactType`` ``application/vnd.mlsec.model.v1``,
the empty config, one layer per file titled with its path). Signatures and SBOMs are attached as
referrers (``subject``), through the referrers API or the ``sha256-<hex>`` tag-schema fallback.

>>> from mlsec.registry import push, pull
>>> push("my-model/", "localhost:5000/models/my-model:v1")  # doctest: +SKIP
>>> pull("localhost:5000/models/my-model:v1", "out/")  # doctest: +SKIP

Stores implement :class:`Store`; :class:`LayoutStore` and :class:`RegistryStore` ship.
"""

from __future__ import annotations

from mlsec.registry._base import open_store
from mlsec.registry.auth import Credentials, docker_config_credentials
from mlsec.registry.client import RegistryStore
from mlsec.registry.layout import LayoutStore
from mlsec.registry.oci import (
    FILE_MEDIA_TYPE,
    MODEL_ARTIFACT_TYPE,
    SBOM_ARTIFACT_TYPE,
    SIGNATURE_ARTIFACT_TYPE,
    Descriptor,
    Index,
    Manifest,
)
from mlsec.registry.reference import Reference, RefKind, default_store_root, parse_reference
from mlsec.registry.referrers import AttachResult, Referrer, attach, fallback_tag, referrers
from mlsec.registry.store import BlobSource, NotFoundError, Store
from mlsec.registry.transfer import (
    PulledFile,
    PullResult,
    PushResult,
    build_manifest,
    pull,
    push,
    safe_titles,
)

__all__ = [
    "FILE_MEDIA_TYPE",
    "MODEL_ARTIFACT_TYPE",
    "SBOM_ARTIFACT_TYPE",
    "SIGNATURE_ARTIFACT_TYPE",
    "AttachResult",
    "BlobSource",
    "Credentials",
    "Descriptor",
    "Index",
    "LayoutStore",
    "Manifest",
    "NotFoundError",
    "PullResult",
    "PulledFile",
    "PushResult",
    "RefKind",
    "Reference",
    "Referrer",
    "RegistryStore",
    "Store",
    "attach",
    "build_manifest",
    "default_store_root",
    "docker_config_credentials",
    "fallback_tag",
    "open_store",
    "parse_reference",
    "pull",
    "push",
    "referrers",
    "safe_titles",
]
