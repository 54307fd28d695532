"""The artifact model: a model file or directory, opened once and shared by every capability.

``open_artifact(path)`` walks the artifact safely (paths never escape the root), detects each
file's format from its bytes, and — when asked — computes each file's SHA-256 exactly once, in
parallel, with large reads. Capabilities take the resulting :class:`Artifact`; nothing re-walks or
re-hashes. Digests are computed on demand (:meth:`Artifact.with_digests`) because scanning a
checkpoint must not read its tensor data.

Walk policy (compatible with the OpenSSF ``model_signing`` tool):

* Hidden files and directories are included; directories themselves are not recorded.
* Ignored by default, at the root only: ``.git``, ``.gitattributes``, ``.github``, ``.gitignore``.
* A symlink whose target lies outside the root, or that is broken, is refused (``ArtifactError``).
* A symlink inside the root is not followed by default and is listed as ignored; with
  ``allow_symlinks=True`` it is followed and its target's content is recorded under the link's
  path. A directory loop is refused.
* Anything that is not a regular file, a directory or a symlink (FIFO, socket, device) is refused.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

from mlsec.errors import ArtifactError
from mlsec.formats import PREFIX_SIZE, Format, sniff, sniff_file
from mlsec.progress import NULL_PROGRESS, Progress

__all__ = [
    "DEFAULT_IGNORES",
    "Artifact",
    "ArtifactFile",
    "Format",
    "Ignored",
    "hash_files",
    "open_artifact",
    "sort_key",
]

DEFAULT_IGNORES: tuple[str, ...] = (".git", ".gitattributes", ".github", ".gitignore")

# Hashing reads each file with read() into one reused buffer per thread, sized to half the CPU's
# L2 cache (256 KiB to 1 MiB; 512 KiB when the size is unknown): the kernel copies page-cache data
# into a buffer that stays in L2, and SHA-256 reads it from there, so the only trip to memory is
# the copy's source. That is within a few per cent of OpenSSL on every core here (Xeon, SHA-NI)
# and does not depend on the CPU. 8 MiB mmap windows, tried before, cost 15-20% more user time on
# that Xeon (each page of the mapping is first touched by the hash, from memory, behind a page
# fault), and a 4 MiB buffer spills an L2 of 2 MiB or less; see benchmarks/RESULTS.md. read() also
# keeps a file truncated by another process mid-hash an error instead of a SIGBUS.
# MLSEC_NO_MMAP=1, which chose read() before, is still accepted and changes nothing.
_MIN_BUFFER = 256 * 1024
_MAX_BUFFER = 1024 * 1024
_DEFAULT_BUFFER = 512 * 1024
_SYS_CPU = Path("/sys/devices/system/cpu/cpu0/cache")


def _l2_size(cache_dir: Path = _SYS_CPU) -> int | None:
    """The L2 (data or unified) cache size of CPU 0 in bytes, from Linux sysfs; None if unknown."""
    try:
        for index in sorted(cache_dir.glob("index*")):
            if (index / "level").read_text().strip() != "2":
                continue
            if (index / "type").read_text().strip() not in ("Data", "Unified"):
                continue
            text = (index / "size").read_text().strip().upper()
            scale = {"K": 1024, "M": 1024 * 1024}.get(text[-1:], 1)
            return int(text.rstrip("KM")) * scale
    except (OSError, ValueError):
        return None
    return None


def _buffer_size(l2: int | None) -> int:
    if not l2:
        return _DEFAULT_BUFFER
    return max(_MIN_BUFFER, min(_MAX_BUFFER, l2 // 2))


_chunk: int | None = None  # the read size, decided on the first hash of the process


def _read_size() -> int:
    global _chunk
    if _chunk is None:
        _chunk = _buffer_size(_l2_size())
    return _chunk


@dataclass(frozen=True, slots=True)
class ArtifactFile:
    """One file of an artifact.

    ``path`` is the POSIX path relative to the artifact root (for a single-file artifact: the file's
    name). ``source`` is where the bytes are read from (the symlink target when one was followed).
    ``sha256`` is None until :meth:`Artifact.with_digests` has run.
    """

    path: str
    source: Path
    size: int
    format: Format
    sha256: str | None = None
    via_symlink: bool = False
    # (device, inode, size, mtime_ns) of the source when it was hashed: a later walk of the same
    # model (open_artifact(reuse=...)) takes the digest instead of reading the file again.
    stamp: tuple[int, int, int, int] | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "format": self.format.value, "size": self.size}
        d["sha256"] = self.sha256
        if self.via_symlink:
            d["via_symlink"] = True
        return d


@dataclass(frozen=True, slots=True)
class Ignored:
    """A path the walk left out, and why."""

    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass(frozen=True)
class Artifact:
    """A model file or directory as mlsec sees it. Immutable; build with :func:`open_artifact`."""

    root: Path
    is_dir: bool
    files: tuple[ArtifactFile, ...]
    ignored: tuple[Ignored, ...] = ()
    ignore_paths: tuple[str, ...] = ()
    allow_symlinks: bool = False
    _index: dict[str, ArtifactFile] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index.update({f.path: f for f in self.files})

    @property
    def name(self) -> str:
        """The artifact's name: the final component of its path."""
        return self.root.name

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def has_digests(self) -> bool:
        return all(f.sha256 is not None for f in self.files)

    def file(self, path: str) -> ArtifactFile:
        """The file at root-relative POSIX ``path``; ``KeyError`` if the artifact has none."""
        return self._index[path]

    def __contains__(self, path: object) -> bool:
        return path in self._index

    @property
    def root_digest(self) -> str:
        """The model's root digest: SHA-256 over the raw bytes of every file's SHA-256 in the
        canonical order (the subject an OpenSSF model signature, an SBOM and an attestation of
        this artifact carry). Needs the digests (:meth:`with_digests`)."""
        missing = [f.path for f in self.files if f.sha256 is None]
        if missing:
            raise ValueError(f"no digest for {missing[0]}: open with digests=True")
        ordered = sorted(self.files, key=lambda f: sort_key(f.path))
        return digest_of_digests(f.sha256 or "" for f in ordered)

    def with_digests(
        self, *, progress: Progress | None = None, workers: int | None = None
    ) -> Artifact:
        """This artifact with every file's SHA-256 filled in (computed once; a no-op if present)."""
        missing = [f for f in self.files if f.sha256 is None]
        if not missing:
            return self
        hashed = _hash_paths([f.source for f in missing], progress, sniff=False, workers=workers)
        done = {f.path: h for f, h in zip(missing, hashed, strict=True)}
        files = tuple(
            f if f.sha256 is not None else replace(f, sha256=done[f.path][0], stamp=done[f.path][2])
            for f in self.files
        )
        return replace(self, files=files, _index={})

    def to_dict(self) -> dict[str, Any]:
        """The JSON-serialisable view used by ``mlsec inspect --format json`` and by evidence."""
        return {
            "path": str(self.root),
            "kind": "directory" if self.is_dir else "file",
            "file_count": len(self.files),
            "total_size": self.total_size,
            "files": [f.to_dict() for f in self.files],
            "ignored": [i.to_dict() for i in self.ignored],
        }


def sort_key(path: str) -> tuple[str, ...]:
    """Canonical order of artifact paths: by path components (``a/b`` before ``a.txt``).

    This is the order ``model_signing`` lists resources in, so root digests agree.
    """
    return tuple(path.split("/"))


def open_artifact(
    path: str | os.PathLike[str],
    *,
    ignore: Iterable[str] = (),
    ignore_git: bool = True,
    allow_symlinks: bool = False,
    digests: bool = False,
    progress: Progress | None = None,
    reuse: Artifact | None = None,
) -> Artifact:
    """Open a model file or directory: safe walk, format detection, and optionally digests.

    ``reuse`` is an earlier walk of the same model (with other ignore or symlink rules, say a
    signature's): a file unchanged since it hashed it (same device, inode, size and mtime) takes
    its digest and format instead of being read again. This is how one command's capabilities
    share a model's digests: by passing the Artifact, not through a global cache.

    ``ignore`` holds paths relative to the artifact root (or existing paths inside it) and glob
    patterns matched against root-relative POSIX paths; a directory excludes everything under it.

    >>> art = open_artifact("my-model/", digests=True)  # doctest: +SKIP
    >>> [(f.path, f.format, f.sha256) for f in art.files]  # doctest: +SKIP
    """
    given = Path(path)
    try:
        st = given.lstat()
    except FileNotFoundError:
        raise ArtifactError(f"{given}: no such file or directory") from None
    except OSError as exc:
        raise ArtifactError(f"{given}: cannot access: {exc.strerror}") from None

    if stat.S_ISLNK(st.st_mode):
        # The artifact itself may be a symlink (a Hugging Face cache entry): its target is the root.
        try:
            st = given.stat()
        except OSError:
            raise ArtifactError(f"{given}: broken symlink") from None
    root = Path(os.path.abspath(given))
    real = Path(os.path.realpath(given))
    patterns = _normalise_ignores(real, ignore)
    if ignore_git:
        patterns = tuple(dict.fromkeys((*DEFAULT_IGNORES, *patterns)))

    ignored: list[Ignored] = []
    if stat.S_ISREG(st.st_mode):
        entries = [_Entry(root.name, real, st.st_size, False)]
    elif stat.S_ISDIR(st.st_mode):
        entries, ignored = _walk(real, patterns, allow_symlinks)
        entries.sort(key=lambda e: sort_key(e.rel))
        ignored.sort(key=lambda i: sort_key(i.path))
    else:
        raise ArtifactError(f"{given}: not a regular file or directory")
    if digests:
        # One read of each file: its format is sniffed from the first chunk the hashing reads.
        known = None
        if reuse is not None:
            known = {
                f.stamp: (f.sha256, f.format)
                for f in reuse.files
                if f.stamp is not None and f.sha256 is not None
            }
        done = _hash_paths(
            [e.source for e in entries],
            progress,
            sniff=True,
            known=known,
        )
        files = tuple(
            ArtifactFile(e.rel, e.source, e.size, fmt or Format.UNKNOWN, sha, e.via_symlink, key)
            for e, (sha, fmt, key) in zip(entries, done, strict=True)
        )
    else:
        files = tuple(_make_file(e) for e in entries)
    return Artifact(
        root=root,
        is_dir=stat.S_ISDIR(st.st_mode),
        files=files,
        ignored=tuple(ignored),
        ignore_paths=patterns if stat.S_ISDIR(st.st_mode) else (),
        allow_symlinks=allow_symlinks,
    )


class _Entry(NamedTuple):
    """A file found by the walk, before its bytes are looked at."""

    rel: str
    source: Path
    size: int
    via_symlink: bool


def _normalise_ignores(root: Path, ignore: Iterable[str]) -> tuple[str, ...]:
    """Root-relative POSIX ignore patterns.

    A relative entry means a path under the artifact root (or a glob). Only when no such path
    exists and the entry names an existing path from the current directory that lies inside the
    root (``model_signing``'s convention) is it taken from there; absolute paths likewise.
    """
    out: list[str] = []
    for raw in ignore:
        p = Path(raw)
        rel_form = PurePosixPath(raw.replace(os.sep, "/")).as_posix().strip("/")
        from_cwd = p.is_absolute() or (not (root / raw).exists() and p.exists())
        if from_cwd and not any(c in raw for c in "*?["):
            real = Path(os.path.realpath(p))
            try:
                rel_form = real.relative_to(root).as_posix()
            except ValueError:
                continue  # outside the artifact: nothing to ignore (model_signing does the same)
        out.append(rel_form)
    return tuple(p for p in out if p and p != ".")


def _is_ignored(rel: str, patterns: Sequence[str]) -> str | None:
    for pat in patterns:
        if rel == pat or rel.startswith(pat + "/"):
            return pat
        if any(c in pat for c in "*?[") and fnmatch.fnmatchcase(rel, pat):
            return pat
    return None


def _walk(
    root: Path, patterns: Sequence[str], allow_symlinks: bool
) -> tuple[list[_Entry], list[Ignored]]:
    files: list[_Entry] = []
    ignored: list[Ignored] = []
    root_st = root.stat()
    # Stack of (directory to read, its root-relative prefix, the (dev, inode)s of its ancestors).
    stack: list[tuple[Path, str, frozenset[tuple[int, int]]]] = [
        (root, "", frozenset({(root_st.st_dev, root_st.st_ino)}))
    ]
    root_str = str(root)
    while stack:
        directory, prefix, ancestors = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError as exc:
            raise ArtifactError(f"{prefix or '.'}: cannot read directory: {exc.strerror}") from None
        for entry in entries:
            rel = f"{prefix}{entry.name}"
            pat = _is_ignored(rel, patterns)
            if pat is not None:
                reason = "default ignore" if pat in DEFAULT_IGNORES else f"ignored by {pat!r}"
                ignored.append(Ignored(rel, reason))
                continue
            try:
                est = entry.stat(follow_symlinks=False)
            except OSError as exc:
                raise ArtifactError(f"{rel}: cannot access: {exc.strerror}") from None
            source = Path(entry.path)
            via_symlink = False
            if stat.S_ISLNK(est.st_mode):
                target = os.path.realpath(entry.path)
                if target != root_str and not target.startswith(root_str + os.sep):
                    raise ArtifactError(
                        f"{rel}: symlink points outside the artifact ({target})",
                        hint="copy the artifact with its links resolved (cp -rL) and retry",
                    )
                try:
                    est = os.stat(target)
                except OSError:
                    raise ArtifactError(f"{rel}: broken symlink") from None
                if not allow_symlinks:
                    ignored.append(Ignored(rel, "symlink (not followed; --allow-symlinks)"))
                    continue
                source, via_symlink = Path(target), True
            if stat.S_ISDIR(est.st_mode):
                key = (est.st_dev, est.st_ino)
                if key in ancestors:
                    raise ArtifactError(f"{rel}: directory loop (leads back to an ancestor)")
                stack.append((source, rel + "/", ancestors | {key}))
            elif stat.S_ISREG(est.st_mode):
                files.append(_Entry(rel, source, est.st_size, via_symlink))
            else:
                raise ArtifactError(f"{rel}: not a regular file or directory")
    return files, ignored


def _make_file(e: _Entry) -> ArtifactFile:
    try:
        fmt = sniff(e.source)
    except PermissionError:
        raise ArtifactError(f"{e.rel}: cannot read: permission denied") from None
    except OSError as exc:
        raise ArtifactError(f"{e.rel}: cannot read: {exc.strerror or exc}") from None
    return ArtifactFile(e.rel, e.source, e.size, fmt, via_symlink=e.via_symlink)


_buffers = threading.local()


def _hash_one(path: Path, progress: Progress, sniff_it: bool) -> tuple[str, Format | None]:
    import hashlib  # here, not at the top: a scan or an inspect without digests never hashes

    h = hashlib.sha256()
    try:
        with open(path, "rb", buffering=0) as f:
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
            fmt = _hash_read(f, h, progress, sniff_name=path.name if sniff_it else None)
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return h.hexdigest(), fmt


def _hash_read(
    f: Any, h: Any, progress: Progress, *, sniff_name: str | None = None
) -> Format | None:
    """Feed ``f`` from its position to EOF to ``h``; sniff the first chunk when a name is given."""
    # One read buffer per thread, reused: allocating (and zeroing) it per file would cost more
    # than hashing a directory of small files.
    buf: bytearray | None = getattr(_buffers, "buf", None)
    if buf is None:
        buf = _buffers.buf = bytearray(_read_size())
    view = memoryview(buf)
    fmt: Format | None = None
    n = f.readinto(buf)
    if sniff_name is not None:
        # The buffer is at least PREFIX_SIZE, so the first read holds the whole sniffing prefix.
        fmt = sniff_file(f, bytes(view[: min(n, PREFIX_SIZE)]), name=sniff_name)
        f.seek(n)
    while n:
        h.update(view[:n])
        progress.advance(n)
        n = f.readinto(buf)
    return fmt


def hash_files(
    paths: Sequence[Path], *, progress: Progress | None = None, workers: int | None = None
) -> list[str]:
    """SHA-256 hex digests of ``paths`` (same order), hashed in parallel threads.

    Large files are started first so that one big file does not finish last on a single core.
    """
    return [sha for sha, _, _ in _hash_paths(paths, progress, sniff=False, workers=workers)]


Stamp = tuple[int, int, int, int]


def _hash_paths(
    paths: Sequence[Path],
    progress: Progress | None,
    *,
    sniff: bool,
    workers: int | None = None,
    known: Mapping[Stamp, tuple[str, Format]] | None = None,
) -> list[tuple[str, Format | None, Stamp]]:
    """(digest, sniffed format, stamp) of each path; a path whose stamp is in ``known`` is not
    read. The stamp is taken before hashing, so a file changed meanwhile never matches later."""
    progress = progress or NULL_PROGRESS
    if not paths:
        return []
    keys = [_identity(p) for p in paths]
    result: list[tuple[str, Format | None, Stamp]] = [("", None, k) for k in keys]
    todo = []
    for i, key in enumerate(keys):
        hit = known.get(key) if known else None
        if hit is not None:
            result[i] = (hit[0], hit[1], key)
        else:
            todo.append(i)
    sizes = [k[2] for k in keys]
    progress.start("hashing", sum(sizes[i] for i in todo))
    order = sorted(todo, key=lambda i: -sizes[i])
    workers = workers or min(32, os.cpu_count() or 1)
    try:
        if workers == 1 or len(order) <= 1:
            for i in order:
                result[i] = (*_hash_one(paths[i], progress, sniff), keys[i])
        else:
            from concurrent.futures import ThreadPoolExecutor  # and logging: not at start-up

            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = {i: pool.submit(_hash_one, paths[i], progress, sniff) for i in order}
                for i, fut in futures.items():
                    result[i] = (*fut.result(), keys[i])
    finally:
        progress.finish()
    return result


def _identity(path: Path) -> tuple[int, int, int, int]:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def digest_of_digests(hex_digests: Iterable[str]) -> str:
    """SHA-256 over the raw bytes of each hex digest, in the order given (the root digest)."""
    import hashlib

    h = hashlib.sha256()
    for d in hex_digests:
        h.update(bytes.fromhex(d))
    return h.hexdigest()
