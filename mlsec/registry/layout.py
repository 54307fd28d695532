"""An OCI image-layout 1.1 directory as a store (the embedded default, no server needed).

``oci-layout`` + ``index.json`` + ``blobs/sha256/<hex>``. Tags are index.json entries annotated
``org.opencontainers.image.ref.name``; untagged manifests (referrers) are kept in index.json too so
that they stay reachable. Blobs are written to a temp file and renamed (readers never see a
partial blob); index.json is rewritten atomically under an exclusive lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

from mlsec.errors import RegistryError
from mlsec.ioutil import atomic_write_bytes
from mlsec.jsonsafe import loads
from mlsec.progress import NULL_PROGRESS, Progress
from mlsec.registry.oci import (
    INDEX_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    MAX_MANIFEST_SIZE,
    REF_NAME,
    Descriptor,
    Index,
    check_digest,
    digest_bytes,
)
from mlsec.registry.store import BlobSource, NotFoundError

__all__ = ["LayoutStore"]

_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'


_MAX_INDEX = 64 * 1024 * 1024


def _read_capped(path: Path, limit: int) -> bytes:
    """At most ``limit`` bytes of ``path`` (a layout is input too: a FIFO or a huge file there
    must not be read without end); ``OSError`` as ``read_bytes`` would raise it."""
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise RegistryError(f"{path}: larger than {limit} bytes")
    return data


class LayoutStore:
    """An OCI image-layout directory. Created on the first write; reading a missing one fails."""

    def __init__(self, path: str | os.PathLike[str], *, concurrency: int = 2) -> None:
        self.path = Path(path)
        self.concurrency = max(1, concurrency)

    @property
    def name(self) -> str:
        return f"oci:{self.path}"

    def __repr__(self) -> str:
        return f"LayoutStore({str(self.path)!r})"

    def _blob(self, digest: str) -> Path:
        return self.path / "blobs" / "sha256" / check_digest(digest).split(":", 1)[1]

    def _check_layout(self) -> None:
        marker = self.path / "oci-layout"
        try:
            doc = loads(_read_capped(marker, 65536), str(marker), RegistryError)
        except FileNotFoundError:
            raise NotFoundError(
                f"{self.path}: not an OCI image layout (no oci-layout file)"
            ) from None
        except (OSError, ValueError, RecursionError) as exc:
            raise RegistryError(f"{marker}: unreadable: {exc}") from None
        if not isinstance(doc, dict) or not str(doc.get("imageLayoutVersion", "")).startswith("1."):
            raise RegistryError(f"{marker}: unsupported image layout version")

    def _init(self) -> None:
        try:
            (self.path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
            if not (self.path / "oci-layout").exists():
                atomic_write_bytes(self.path / "oci-layout", _LAYOUT)
            if not (self.path / "index.json").exists():
                atomic_write_bytes(self.path / "index.json", Index(()).to_bytes())
        except OSError as exc:
            raise RegistryError(
                f"{self.path}: cannot create layout: {exc.strerror or exc}"
            ) from None
        self._check_layout()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.path / ".mlsec.lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            yield

    def _index(self) -> Index:
        try:
            data = _read_capped(self.path / "index.json", _MAX_INDEX)
        except FileNotFoundError:
            raise NotFoundError(f"{self.path}: not an OCI image layout (no index.json)") from None
        except OSError as exc:
            raise RegistryError(f"{self.path}/index.json: {exc.strerror or exc}") from None
        return Index.parse(data, f"{self.path}/index.json")

    def tags(self) -> list[str]:
        """Every tag of the layout (index.json entries annotated with a ``ref.name``)."""
        names = (d.annotations.get(REF_NAME) for d in self._index().manifests)
        return sorted({n for n in names if n})

    def has_blob(self, digest: str) -> bool:
        return self._blob(digest).is_file()

    def push_blob(self, desc: Descriptor, source: BlobSource, progress: Progress) -> None:
        self._init()
        target = self._blob(desc.digest)
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".part", dir=target.parent)
        try:
            os.fchmod(fd, 0o644)  # blobs are content, readable like index.json (mkstemp: 0600)
            with os.fdopen(fd, "wb") as out:
                if isinstance(source, bytes):
                    out.write(source)
                else:
                    with open(source, "rb") as src:
                        # copy_file_range/sendfile under the hood: no pass through Python buffers.
                        shutil.copyfileobj(src, out, 8 * 1024 * 1024)
                size = out.tell()
            if size != desc.size:
                raise RegistryError(
                    f"{source if isinstance(source, Path) else 'blob'}: size changed while pushing"
                    f" (expected {desc.size} bytes, read {size})"
                )
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        progress.advance(desc.size)

    def open_blob(self, desc: Descriptor) -> AbstractContextManager[BinaryIO]:
        try:
            return open(self._blob(desc.digest), "rb")
        except FileNotFoundError:
            raise NotFoundError(f"{self.name}: blob {desc.digest} not found") from None
        except OSError as exc:
            raise RegistryError(f"{self.name}: blob {desc.digest}: {exc.strerror or exc}") from None

    def fetch_manifest(self, reference: str) -> tuple[bytes, str]:
        self._check_layout()
        index = self._index()
        if reference.startswith("sha256:"):
            desc = next((d for d in index.manifests if d.digest == reference), None)
            path = self._blob(reference)
        else:
            desc = next(
                (d for d in reversed(index.manifests) if d.annotations.get(REF_NAME) == reference),
                None,
            )
            if desc is None:
                raise NotFoundError(f"{self.name}: unknown tag {reference!r}")
            path = self._blob(desc.digest)
        try:
            data = _read_capped(path, MAX_MANIFEST_SIZE)
        except FileNotFoundError:
            raise NotFoundError(f"{self.name}: manifest {reference} not found") from None
        if desc is not None and digest_bytes(data) != desc.digest:
            raise RegistryError(
                f"{self.name}: manifest {reference}: digest mismatch: expected {desc.digest},"
                f" got {digest_bytes(data)}"
            )
        media_type = desc.media_type if desc is not None else _sniff_media_type(data)
        return data, media_type

    def push_manifest(self, data: bytes, media_type: str, tag: str | None) -> None:
        digest = digest_bytes(data)
        self.push_blob(Descriptor(media_type, digest, len(data)), data, NULL_PROGRESS)
        with self._locked():
            index = self._index()
            desc = Descriptor(media_type, digest, len(data), {REF_NAME: tag} if tag else {})
            kept = [
                d
                for d in index.manifests
                if not (tag and d.annotations.get(REF_NAME) == tag)
                and not (d.digest == digest and not d.annotations.get(REF_NAME))
            ]
            if tag or not any(d.digest == digest for d in kept):
                kept.append(desc)
            atomic_write_bytes(
                self.path / "index.json", Index(tuple(kept), index.annotations).to_bytes()
            )

    def referrers(self, digest: str) -> list[Descriptor] | None:
        # A layout has no referrers API: the tag-schema fallback works the same here.
        return None

    def close(self) -> None:
        pass


def _sniff_media_type(data: bytes) -> str:
    from mlsec.jsonsafe import loads

    try:
        obj = loads(data, "manifest", RegistryError)
    except RegistryError:
        return MANIFEST_MEDIA_TYPE
    if isinstance(obj, dict) and isinstance(obj.get("mediaType"), str):
        return str(obj["mediaType"])
    return INDEX_MEDIA_TYPE if isinstance(obj, dict) and "manifests" in obj else MANIFEST_MEDIA_TYPE
