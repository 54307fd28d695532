"""push and pull: a model to and from a store, as an OCI artifact.

Push reuses the artifact model's digests (each file hashed once, by :func:`open_artifact`) as the
layer digests and never reads a file except to send it. Pull trusts nothing it receives: the
manifest is checked against its digest when addressed by one, every layer title must be a safe
relative path, and every blob is hashed and sized while it streams into a temp directory beside
the destination, which is renamed into place only when everything is verified.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from mlsec import __version__
from mlsec.artifact import Artifact, open_artifact
from mlsec.errors import ArtifactError, RegistryError
from mlsec.progress import NULL_PROGRESS, Progress
from mlsec.registry._base import created_annotation, fetch_manifest, store_for
from mlsec.registry.oci import (
    EMPTY_CONFIG,
    EMPTY_JSON,
    FILE_MEDIA_TYPE,
    FORMAT_ANNOTATION,
    INDEX_MEDIA_TYPE,
    KIND_ANNOTATION,
    MANIFEST_MEDIA_TYPE,
    MODEL_ARTIFACT_TYPE,
    TITLE,
    VERSION_ANNOTATION,
    Descriptor,
    Manifest,
    digest_bytes,
)
from mlsec.registry.reference import Reference, parse_reference
from mlsec.registry.referrers import AttachResult, Referrer, plan_referrers
from mlsec.registry.store import Store

__all__ = [
    "PullResult",
    "PulledFile",
    "PushResult",
    "build_manifest",
    "pull",
    "push",
    "safe_titles",
]

_READ = 1024 * 1024


@dataclass(frozen=True, slots=True)
class PushResult:
    """What a push did. ``bytes_uploaded`` excludes blobs the store already had."""

    reference: str
    digest: str
    layers: int
    total_bytes: int
    bytes_uploaded: int
    blobs_skipped: int
    referrers: tuple[AttachResult, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "digest": self.digest,
            "layers": self.layers,
            "total_bytes": self.total_bytes,
            "bytes_uploaded": self.bytes_uploaded,
            "blobs_skipped": self.blobs_skipped,
            "referrers": [r.to_dict() for r in self.referrers],
        }


@dataclass(frozen=True, slots=True)
class PulledFile:
    """One file written by a pull."""

    path: str
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True, slots=True)
class PullResult:
    """What a pull wrote: the model directory, its verified files, and referrer files."""

    reference: str
    digest: str
    dest: Path
    files: tuple[PulledFile, ...]
    total_bytes: int
    referrer_files: tuple[Path, ...] = ()
    # A sealed model opened on pull: the plaintext files now in ``dest`` (``files`` is the one
    # verified ciphertext layer); None for a plain pull.
    extracted: tuple[tuple[str, int], ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "reference": self.reference,
            "digest": self.digest,
            "dest": str(self.dest),
            "total_bytes": self.total_bytes,
            "files": [f.to_dict() for f in self.files],
            "referrer_files": [str(p) for p in self.referrer_files],
        }
        if self.extracted is not None:
            out["extracted"] = [{"path": p, "size": n} for p, n in self.extracted]
        return out


def build_manifest(artifact: Artifact, annotations: Mapping[str, str] | None = None) -> Manifest:
    """The OCI manifest of an artifact whose digests are computed (one layer per file)."""
    layers = []
    for f in artifact.files:
        assert f.sha256 is not None
        layers.append(
            Descriptor(
                FILE_MEDIA_TYPE,
                "sha256:" + f.sha256,
                f.size,
                {TITLE: f.path, FORMAT_ANNOTATION: f.format.value},
            )
        )
    notes = {
        **created_annotation(),
        VERSION_ANNOTATION: __version__,
        KIND_ANNOTATION: "directory" if artifact.is_dir else "file",
        **(annotations or {}),
    }
    return Manifest(EMPTY_CONFIG, tuple(layers), MODEL_ARTIFACT_TYPE, None, notes)


def push(
    source: str | os.PathLike[str] | Artifact,
    ref: str | Reference,
    *,
    store: Store | None = None,
    progress: Progress | None = None,
    annotations: Mapping[str, str] | None = None,
) -> PushResult:
    """Push a model file or directory (or an opened :class:`Artifact`) to ``ref``.

    Blobs the store already holds are skipped (``HEAD``); each distinct blob is sent once.

    >>> push("my-model/", "localhost:5000/models/my-model:v1")  # doctest: +SKIP
    """
    reference = parse_reference(ref) if isinstance(ref, str) else ref
    if reference.digest:
        raise RegistryError(f"{reference}: push needs a tag, not a digest")
    progress = progress or NULL_PROGRESS
    if isinstance(source, Artifact):
        art = source.with_digests(progress=progress)
    else:
        art = open_artifact(source, digests=True, progress=progress)
    if not art.files:
        raise ArtifactError(f"{art.root}: nothing to push (no files)")
    manifest = build_manifest(art, annotations)
    by_digest = {f"sha256:{f.sha256}": f for f in art.files}
    data = manifest.to_bytes()
    with store_for(reference, store) as st:
        uploads: list[Descriptor] = []
        skipped = 0
        seen: set[str] = set()
        for desc in (EMPTY_CONFIG, *manifest.layers):
            if desc.digest in seen:
                continue
            seen.add(desc.digest)
            if st.has_blob(desc.digest):
                skipped += 1
            else:
                uploads.append(desc)
        total = sum(d.size for d in uploads)

        def upload(desc: Descriptor) -> None:
            if desc.digest == EMPTY_CONFIG.digest and desc.title is None:
                st.push_blob(desc, EMPTY_JSON, progress)
                return
            f = by_digest[desc.digest]
            try:
                st.push_blob(desc, f.source, progress)
            except RegistryError as exc:
                raise RegistryError(f"{f.path}: {exc.message}", hint=exc.hint) from None
            except OSError as exc:
                raise ArtifactError(f"{f.path}: cannot read: {exc.strerror or exc}") from None

        progress.start("pushing", total)
        try:
            _parallel(upload, sorted(uploads, key=lambda d: -d.size), st.concurrency)
        finally:
            progress.finish()
        st.push_manifest(data, MANIFEST_MEDIA_TYPE, reference.tag)
    return PushResult(
        reference=str(reference),
        digest=digest_bytes(data),
        layers=len(manifest.layers),
        total_bytes=art.total_size,
        bytes_uploaded=total,
        blobs_skipped=skipped,
    )


def safe_titles(layers: tuple[Descriptor, ...]) -> list[PurePosixPath]:
    """Each layer's title as a safe relative path, or :class:`RegistryError`.

    Refused: a missing or empty title, an absolute path, ``.`` / ``..`` / empty components,
    backslashes or NUL, duplicates, and a title that would pass through another file
    (``a`` and ``a/b``).
    """
    out: list[PurePosixPath] = []
    seen: set[str] = set()
    for i, layer in enumerate(layers):
        title = layer.title
        if not title:
            raise RegistryError(f"layer {i} ({layer.digest}): no org.opencontainers.image.title")
        parts = title.split("/")
        if (
            title.startswith("/")
            or "\\" in title
            or "\x00" in title
            or any(p in ("", ".", "..") for p in parts)
        ):
            raise RegistryError(f"layer {i}: unsafe file path {title!r} in manifest")
        if title in seen:
            raise RegistryError(f"layer {i}: duplicate file path {title!r} in manifest")
        seen.add(title)
        out.append(PurePosixPath(title))
    dirs = {str(parent) for p in out for parent in p.parents if str(parent) != "."}
    clash = sorted(seen & dirs)
    if clash:
        raise RegistryError(f"manifest: {clash[0]!r} is both a file and a directory")
    return out


def _stream_verified(
    st: Store,
    desc: Descriptor,
    target: Path,
    label: str,
    progress: Progress,
    stop: threading.Event | None = None,
) -> None:
    """Copy a blob into ``target`` while hashing it; refuse a wrong size or digest. Gives up
    between chunks once ``stop`` is set (another download failed, or the run is interrupted)."""
    h = hashlib.sha256()
    buf = bytearray(_READ)
    view = memoryview(buf)
    got = 0
    try:
        opened = st.open_blob(desc)
    except RegistryError as exc:
        raise type(exc)(f"{label}: {exc.message}", hint=exc.hint) from None
    # "x": never write through something already there (a case-insensitive file system would
    # otherwise let "A.bin" silently replace a verified "a.bin").
    with opened as src, open(target, "xb") as out:
        while True:
            n = src.readinto(view) if hasattr(src, "readinto") else _readinto(src, view)
            if not n:
                break
            if stop is not None and stop.is_set():
                raise RegistryError(f"{label}: cancelled")
            got += n
            if got > desc.size:
                raise RegistryError(
                    f"{label}: size mismatch: expected {desc.size} bytes, the store sent more"
                )
            h.update(view[:n])
            out.write(view[:n])
            progress.advance(n)
    if got != desc.size:
        raise RegistryError(f"{label}: size mismatch: expected {desc.size} bytes, got {got}")
    actual = "sha256:" + h.hexdigest()
    if actual != desc.digest:
        raise RegistryError(f"{label}: digest mismatch: expected {desc.digest}, got {actual}")


def _readinto(src: Any, view: memoryview) -> int:
    data = src.read(len(view))
    view[: len(data)] = data
    return len(data)


def _check_dest(dest: Path, force: bool) -> None:
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise RegistryError(f"{dest}: exists and is not a directory")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise RegistryError(f"{dest}: directory is not empty", hint="use --force to replace it")


def pull(
    ref: str | Reference,
    dest: str | os.PathLike[str],
    *,
    store: Store | None = None,
    progress: Progress | None = None,
    force: bool = False,
    with_referrers: bool = False,
) -> PullResult:
    """Pull the model at ``ref`` into the directory ``dest``, verifying every blob.

    ``dest`` must not exist or be empty, unless ``force`` (then it is replaced, only once the new
    content is complete and verified). A failed pull leaves nothing behind. With
    ``with_referrers``, referrers are written beside it: ``DEST.sig`` (sigstore bundle),
    ``DEST.cdx.json`` (CycloneDX SBOM), ``DEST.<hex12>.referrer`` (anything else).
    """
    reference = parse_reference(ref) if isinstance(ref, str) else ref
    progress = progress or NULL_PROGRESS
    dest = Path(os.path.abspath(dest))
    if not dest.name:
        raise RegistryError(f"{dest}: cannot pull into the root directory")
    _check_dest(dest, force)
    with store_for(reference, store) as st:
        data, media_type, digest = fetch_manifest(st, reference.reference, str(reference))
        if media_type == INDEX_MEDIA_TYPE:
            raise RegistryError(f"{reference}: is an image index, not a model manifest")
        manifest = Manifest.parse(data, f"{reference}: manifest")
        titles = safe_titles(manifest.layers)
        referrer_plan: list[tuple[Path, Descriptor, Referrer]] = []
        if with_referrers:
            referrer_plan = plan_referrers(st, digest, dest, force)
        created = _missing_ancestor(dest.parent)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = _make_temp_dir(dest)
        except OSError as exc:
            raise RegistryError(f"{dest}: cannot create: {exc.strerror or exc}") from None
        try:
            files = _download(st, manifest, titles, tmp, progress)
            staged = []
            for i, (final, layer, ref_info) in enumerate(referrer_plan):
                part = tmp.parent / f"{tmp.name}.ref{i}"
                try:
                    _stream_verified(st, layer, part, f"referrer {ref_info.digest}", NULL_PROGRESS)
                except BaseException:
                    part.unlink(missing_ok=True)
                    raise
                staged.append((part, final))
            try:
                _install(tmp, dest, force)
            except OSError as exc:
                raise RegistryError(f"{dest}: cannot replace: {exc.strerror or exc}") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            for i in range(len(referrer_plan)):
                (tmp.parent / f"{tmp.name}.ref{i}").unlink(missing_ok=True)
            if created is not None:  # directories this pull made for DEST's parent
                shutil.rmtree(created, ignore_errors=True)
            raise
        for part, final in staged:
            os.replace(part, final)
    return PullResult(
        reference=str(reference),
        digest=digest,
        dest=dest,
        files=files,
        total_bytes=sum(f.size for f in files),
        referrer_files=tuple(final for _, final in staged),
    )


def _make_temp_dir(dest: Path) -> Path:
    """A new empty directory beside ``dest``. Unlike ``mkdtemp`` (0700) it gets the mode a plain
    ``mkdir`` gives (the umask applies), since it becomes the model directory."""
    for _ in range(100):
        tmp = dest.parent / f".{dest.name}.{secrets.token_hex(6)}.pull"
        try:
            tmp.mkdir()
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"{dest.parent}: cannot create a temporary directory")


def _missing_ancestor(path: Path) -> Path | None:
    """The outermost ancestor-or-self of ``path`` that does not exist yet (None if it exists)."""
    missing = None
    for p in (path, *path.parents):
        if p.exists():
            break
        missing = p
    return missing


def _download(
    st: Store, manifest: Manifest, titles: list[PurePosixPath], tmp: Path, progress: Progress
) -> tuple[PulledFile, ...]:
    """Every distinct blob once (in parallel, largest first), then copies for duplicates."""
    first: dict[str, tuple[Descriptor, PurePosixPath]] = {}
    for layer, title in zip(manifest.layers, titles, strict=True):
        first.setdefault(layer.digest, (layer, title))
        try:
            tmp.joinpath(*title.parts).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryError(f"{title}: cannot write: {exc.strerror or exc}") from None

    stop = threading.Event()

    def fetch(item: tuple[Descriptor, PurePosixPath]) -> None:
        layer, title = item
        try:
            _stream_verified(st, layer, tmp.joinpath(*title.parts), str(title), progress, stop)
        except FileExistsError:
            raise _clash(title) from None
        except OSError as exc:
            raise RegistryError(f"{title}: cannot write: {exc.strerror or exc}") from None

    progress.start("pulling", sum(d.size for d in manifest.layers))
    try:
        _parallel(fetch, sorted(first.values(), key=lambda x: -x[0].size), st.concurrency, stop)
        for layer, title in zip(manifest.layers, titles, strict=True):
            source = first[layer.digest][1]
            if source is title:
                continue
            target = tmp.joinpath(*title.parts)
            try:
                if target.exists():
                    raise _clash(title)
                shutil.copyfile(tmp.joinpath(*source.parts), target)
            except OSError as exc:
                raise RegistryError(f"{title}: cannot write: {exc.strerror or exc}") from None
            progress.advance(layer.size)
    finally:
        progress.finish()
    return tuple(
        PulledFile(str(title), layer.size, layer.hex)
        for layer, title in zip(manifest.layers, titles, strict=True)
    )


def _clash(title: PurePosixPath) -> RegistryError:
    return RegistryError(f"{title}: clashes with another file of the model on this file system")


T = TypeVar("T")


def _parallel(
    fn: Callable[[T], None],
    items: Sequence[T],
    workers: int,
    stop: threading.Event | None = None,
) -> None:
    """``fn`` over ``items`` on up to ``workers`` threads; the first error (or an interrupt:
    SIGINT, SIGTERM) cancels the rest and sets ``stop``, so running ``fn`` calls that watch it
    end early and the caller's cleanup does not race with them."""
    if workers <= 1 or len(items) <= 1:
        for item in items:
            fn(item)
        return
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        futures = [pool.submit(fn, item) for item in items]
        try:
            for fut in as_completed(futures):
                fut.result()
        except BaseException:
            if stop is not None:
                stop.set()
            for fut in futures:
                fut.cancel()
            raise


def _install(tmp: Path, dest: Path, force: bool) -> None:
    if dest.is_dir():
        if any(dest.iterdir()) and not force:
            raise RegistryError(f"{dest}: directory is not empty", hint="use --force to replace it")
        old = dest.parent / f".{dest.name}.{secrets.token_hex(6)}.old"
        os.replace(dest, old)
        try:
            os.replace(tmp, dest)
        except OSError:
            os.replace(old, dest)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dest)
