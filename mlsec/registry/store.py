"""The store interface: what push and pull need from a place that holds OCI content.

Two implementations ship: :class:`~mlsec.registry.layout.LayoutStore` (an OCI image-layout
directory) and :class:`~mlsec.registry.client.RegistryStore` (the OCI distribution API). A store
moves bytes; it does not decide whether they are right — :mod:`mlsec.registry.ops` verifies every
digest and size, because a registry may serve a corrupted blob as is.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from mlsec.errors import RegistryError
from mlsec.progress import Progress
from mlsec.registry.oci import Descriptor

__all__ = ["BlobSource", "NotFoundError", "Store"]

# Where a blob's bytes come from on push: a file (streamed, never read whole) or small bytes.
BlobSource = Path | bytes


class NotFoundError(RegistryError):
    """The store has no such manifest, tag or blob."""


@runtime_checkable
class Store(Protocol):
    """A place that holds blobs and manifests of one repository."""

    #: How many blobs push and pull may move at once (each call from its own thread).
    concurrency: int

    @property
    def name(self) -> str:
        """A human-readable name for messages (``127.0.0.1:5000/models/x``, ``oci:/path``)."""
        ...

    def has_blob(self, digest: str) -> bool:
        """True if the store already holds the blob ``digest``."""
        ...

    def push_blob(self, desc: Descriptor, source: BlobSource, progress: Progress) -> None:
        """Store the blob described by ``desc``, streaming it from ``source``."""
        ...

    def open_blob(self, desc: Descriptor) -> AbstractContextManager[BinaryIO]:
        """A readable stream of the blob's bytes, *unverified* (the caller hashes them)."""
        ...

    def fetch_manifest(self, reference: str) -> tuple[bytes, str]:
        """The bytes and media type of the manifest or index named by a tag or digest.

        Raises :class:`NotFoundError` when there is none.
        """
        ...

    def push_manifest(self, data: bytes, media_type: str, tag: str | None) -> None:
        """Store a manifest or index (by its digest) and point ``tag`` at it when given."""
        ...

    def referrers(self, digest: str) -> list[Descriptor] | None:
        """The referrers of ``digest`` from a referrers API, or None when the store has none
        (callers then use the ``sha256-<hex>`` tag-schema fallback)."""
        ...

    def close(self) -> None:
        """Release connections and locks."""
        ...
