"""Verification: check the bundle's signature, then compare what it lists with the model on disk.

Names in the manifest are never opened: the model is walked with the policy recorded in the
signature (``ignore_paths``, ``allow_symlinks``) and the two file sets are compared.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlsec.artifact import Artifact, open_artifact, sort_key
from mlsec.errors import ArtifactError, BundleError, VerificationError
from mlsec.progress import Progress
from mlsec.schemas import Schema
from mlsec.signing.bundle import Bundle
from mlsec.signing.dsse import IN_TOTO_PAYLOAD_TYPE
from mlsec.signing.manifest import Manifest, Resource, sharded
from mlsec.signing.verifiers import (
    CertificateVerifier,
    KeyVerifier,
    SigstoreVerifier,
    Verifier,
)

__all__ = [
    "SCHEMA",
    "CertificateVerifier",
    "Difference",
    "KeyVerifier",
    "SigstoreVerifier",
    "Verification",
    "Verifier",
    "verify_model",
]

SCHEMA = Schema.VERIFY


@dataclass(frozen=True, slots=True)
class Difference:
    """One way the model differs from what was signed."""

    path: str
    status: str  # "changed" | "missing" | "extra" | "invalid-name"
    expected: str | None = None
    actual: str | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "status": self.status}
        if self.expected is not None:
            d["expected"] = self.expected
        if self.actual is not None:
            d["actual"] = self.actual
        if self.reason:
            d["reason"] = self.reason
        return d

    def line(self) -> str:
        match self.status:
            case "changed" if self.expected is None:
                return f"{self.path}: {self.reason or 'changed'}"
            case "changed":
                return f"{self.path}: digest differs (signed {self.expected}, now {self.actual})"
            case "missing":
                extra = f"; {self.reason}" if self.reason else ""
                return f"{self.path}: signed file is missing{extra}"
            case "extra":
                why = f" ({self.reason})" if self.reason else ""
                return f"{self.path}: file is not covered by the signature{why}"
            case _:
                return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class Verification:
    """The outcome of verifying a model (``ok`` is True only when nothing differs)."""

    model: str
    method: str
    signer: str
    root_digest: str
    files: int
    differences: tuple[Difference, ...] = ()
    ignored_by_signature: tuple[str, ...] = ()
    caller_ignores: tuple[str, ...] = ()
    allow_symlinks: bool = False
    unsigned_files: tuple[str, ...] = ()
    compat: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "ok": self.ok,
            "model": self.model,
            "method": self.method,
            "signer": self.signer,
            "root_digest": f"sha256:{self.root_digest}" if self.root_digest else None,
            "files": self.files,
            "differences": [d.to_dict() for d in self.differences],
            "policy": {
                "signed_ignore_paths": list(self.ignored_by_signature),
                "caller_ignore_paths": list(self.caller_ignores),
                "allow_symlinks": self.allow_symlinks,
            },
            "unsigned_files_tolerated": list(self.unsigned_files),
            "notes": list(self.notes),
        }

    def summary(self) -> str:
        if self.ok:
            return f"{self.model}: OK, {self.files} files verified ({self.signer})"
        return f"{self.model}: " + "; ".join(d.line() for d in self.differences)


def _bad_name(name: str) -> str | None:
    if not name or name.startswith("/"):
        return "absolute or empty path"
    if "\x00" in name:
        return "contains a NUL byte"
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "not a normalised path inside the model ('..', '.', or empty component)"
    return None


def _hash_range(path: Path, algo: str, start: int, end: int) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        f.seek(start)
        left = end - start
        while left > 0:
            chunk = f.read(min(left, 4 * 1024 * 1024))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def _local_resources(
    art: Artifact, manifest: Manifest, progress: Progress | None
) -> tuple[Artifact, dict[str, Resource]]:
    """The resources the model on disk has, computed the way the manifest was."""
    ser = manifest.serialization
    if ser.method == "files" and ser.hash_type == "sha256":
        art = art.with_digests(progress=progress)
        return art, {f.path: Resource(f.path, "sha256", f.sha256 or "") for f in art.files}
    if ser.hash_type not in ("sha256", "blake2b"):
        raise BundleError(f"statement: hash type {ser.hash_type!r} is not supported by mlsec")
    out: dict[str, Resource] = {}
    if ser.method == "files":
        for f in art.files:
            out[f.path] = Resource(
                f.path, ser.hash_type, _hash_range(f.source, ser.hash_type, 0, f.size)
            )
        return art, out
    k = ser.shard_size or 1
    algo = f"{ser.hash_type}-sharded-{k}"
    for f in art.files:
        for start in range(0, f.size, k):  # a 0-byte file has no shard, as in model_signing
            end = min(start + k, f.size)
            name = f"{f.path}:{start}:{end}"
            out[name] = Resource(name, algo, _hash_range(f.source, ser.hash_type, start, end))
    return art, out


def _resource_file(name: str, sharded_mode: bool) -> str:
    if sharded_mode:
        parts = name.rsplit(":", 2)
        return parts[0] if len(parts) == 3 else name
    return name


def _walk(
    path: str | os.PathLike[str] | Artifact,
    manifest: Manifest,
    caller: tuple[str, ...],
    signature_path: str | os.PathLike[str] | None,
    progress: Progress | None = None,
) -> Artifact:
    """The model walked with the signed policy (recorded ignores, symlinks) plus the caller's.
    Given an :class:`Artifact`, its digests are reused for every unchanged file (no re-read)."""
    reuse = path if isinstance(path, Artifact) else None
    root = Path(os.path.abspath(path.root if isinstance(path, Artifact) else path))
    if not os.path.lexists(root):
        raise ArtifactError(f"{path}: no such file or directory")
    recorded = manifest.serialization.ignore_paths
    # Recorded paths are root-relative; anchoring them at the root keeps "../x" from mattering.
    excluded = [str(root / p) for p in recorded or () if not p.startswith("/")]
    if signature_path is not None:
        excluded.append(os.path.abspath(signature_path))
    # An unsafe model (symlink leaving it, loop, FIFO, unreadable file) cannot be verified at
    # all: ArtifactError, exit 2, as for every other command.
    return open_artifact(
        root,
        ignore=(*excluded, *caller),
        # Bundles that record their ignore list carry the git defaults in it (or chose not to).
        ignore_git=recorded is None,
        # The common case (files, sha256) hashes during the walk: each file is read once.
        digests=manifest.serialization.method == "files"
        and manifest.serialization.hash_type == "sha256",
        progress=progress,
        allow_symlinks=manifest.serialization.allow_symlinks,
        reuse=reuse,
    )


class _Comparison:
    """Signed resources against local ones, aggregated per file (shards roll up to their file)."""

    def __init__(self, art: Artifact, manifest: Manifest, local: dict[str, Resource]) -> None:
        self.sharded = manifest.serialization.method == "shards" or any(
            sharded(r.algorithm) for r in manifest.resources
        )
        # A single-file model: model_signing names it ".", the OMS spec the basename.
        self._single = None if art.is_dir else art.files[0].path
        self.local = {self._canon(k): r for k, r in local.items()}
        self.diffs: list[Difference] = []
        self.expected: dict[str, Resource] = {}
        for r in manifest.resources:
            fname = self._file(r.name)
            ok_single = self._single is not None and fname in (".", self._single)
            bad = None if ok_single else _bad_name(fname)
            if bad:
                self.diffs.append(
                    Difference(r.name, "invalid-name", reason=f"manifest entry: {bad}")
                )
            elif self._canon(r.name) in self.expected:  # "." and the file's own name
                raise VerificationError(
                    f"statement: ambiguous: {r.name!r} and"
                    f" {self.expected[self._canon(r.name)].name!r} name the same file"
                )
            else:
                self.expected[self._canon(r.name)] = r
        self.expected_files = {self._file(k) for k in self.expected}
        self._changed: dict[str, Difference] = {}

    def _canon(self, name: str) -> str:
        fname = self._file(name)
        if self._single is not None and fname == self._single:
            return "." + name[len(fname) :]
        return name

    def _file(self, name: str) -> str:
        return _resource_file(name, self.sharded)

    def _shards_differ(self, fname: str) -> None:
        self._changed.setdefault(fname, Difference(fname, "changed", reason="shards differ"))

    def run(self, symlinked: set[str]) -> tuple[list[Difference], list[str], list[str]]:
        """Differences, extra files, and extra symlinks (not followed under the signed policy)."""
        local_files = {self._file(k) for k in self.local}
        for name, r in self.expected.items():
            have, fname = self.local.get(name), self._file(name)
            if have is None and self.sharded and fname in local_files:
                self._shards_differ(fname)
            elif have is None:
                why = "now a symlink, and the signature does not allow following symlinks"
                reason = why if fname in symlinked else ""
                self.diffs.append(Difference(fname, "missing", expected=r.digest, reason=reason))
            elif (have.algorithm, have.digest) == (r.algorithm, r.digest):
                continue
            elif self.sharded:
                self._shards_differ(fname)
            elif have.algorithm != r.algorithm:
                why = f"algorithm {r.algorithm!r} signed, {have.algorithm!r} computed"
                self.diffs.append(Difference(name, "changed", reason=why))
            else:
                self.diffs.append(
                    Difference(name, "changed", expected=r.digest, actual=have.digest)
                )
        extra: set[str] = set()
        for k in self.local:
            if k not in self.expected:
                fname = self._file(k)
                if fname in self.expected_files:  # a shard nobody signed: the file grew
                    self._shards_differ(fname)
                else:
                    extra.add(fname)
        self.diffs.extend(self._changed.values())
        seen = {d.path for d in self.diffs} | set(self.expected)
        links = sorted(symlinked - seen, key=sort_key)
        return self.diffs, sorted(extra, key=sort_key), links


def verify_model(
    path: str | os.PathLike[str] | Artifact,
    bundle: Bundle,
    verifier: Verifier,
    *,
    ignore: Iterable[str] = (),
    ignore_unsigned: bool = False,
    signature_path: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> Verification:
    """Verify ``bundle`` over the model at ``path`` (a path, or an already opened
    :class:`~mlsec.artifact.Artifact` whose digests are reused); return the result or raise.

    Raises :class:`VerificationError` (``.result`` holds the :class:`Verification`) when the
    signature is bad or the model differs, :class:`BundleError` when the bundle is malformed.
    """
    payload, signer = verifier.verify_signature(bundle)
    if bundle.payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise VerificationError(f"payload type is {bundle.payload_type!r}, not in-toto")
    manifest = Manifest.from_statement(payload)
    caller = tuple(ignore)
    art = _walk(path, manifest, caller, signature_path, progress)
    art, local = _local_resources(art, manifest, progress)
    symlinked = {i.path for i in art.ignored if i.reason.startswith("symlink")}
    cmp = _Comparison(art, manifest, local)
    diffs, extra, links = cmp.run(symlinked)
    unsigned: tuple[str, ...] = ()
    if ignore_unsigned:
        unsigned = (*extra, *links)
    else:
        diffs.extend(Difference(e, "extra") for e in extra)
        # A symlink the signed policy does not follow is still a file a loader would open.
        why = "symlink; the signature does not allow symlinks"
        diffs.extend(Difference(p, "extra", reason=why) for p in links)
    diffs.sort(key=lambda d: sort_key(d.path))
    notes = []
    if manifest.compat:
        notes.append("legacy model_signing v0.2 statement: no root digest was signed")
    if caller:
        notes.append("caller --ignore paths applied on top of the signed ignore list")
    result = Verification(
        model=str(path),
        method=verifier.method,
        signer=signer,
        root_digest="" if manifest.compat else manifest.root_digest,
        files=len(cmp.expected_files),
        differences=tuple(diffs),
        ignored_by_signature=tuple(manifest.serialization.ignore_paths or ()),
        caller_ignores=caller,
        allow_symlinks=manifest.serialization.allow_symlinks,
        unsigned_files=unsigned,
        compat=manifest.compat,
        notes=tuple(notes),
    )
    if not result.ok:
        raise VerificationError(result.summary(), result=result)
    return result
