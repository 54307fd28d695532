"""The signed manifest: one resource per file, the root digest, and the in-toto statement.

A :class:`Manifest` is built from an :class:`~mlsec.artifact.Artifact` whose digests were already
computed (nothing is re-hashed), or parsed from a statement. Parsing never opens a path named in
the statement: names are compared against the artifact walk only.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlsec.artifact import Artifact, sort_key
from mlsec.errors import BundleError, SigningError, VerificationError
from mlsec.jsonsafe import loads

__all__ = [
    "PREDICATE_TYPE",
    "PREDICATE_TYPE_COMPAT",
    "STATEMENT_TYPE",
    "Manifest",
    "Resource",
    "Serialization",
    "check_unambiguous",
    "root_digest",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
PREDICATE_TYPE_COMPAT = "https://model_signing/Digests/v0.1"

_HEX = re.compile(r"^[0-9a-f]+$")
_SHARDED = re.compile(r"^(sha256|blake2b)-sharded-(\d+)$")


@dataclass(frozen=True, slots=True)
class Resource:
    """a file (``name``: root-relative POSIX path) or a shard (``path:start:end``)."""

    name: str
    algorithm: str
    digest: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "digest": self.digest, "algorithm": self.algorithm}


@dataclass(frozen=True, slots=True)
class Serialization:
    """How the model was serialized at signing time (``predicate.serialization``)."""

    method: str = "files"
    hash_type: str = "sha256"
    allow_symlinks: bool = False
    ignore_paths: tuple[str, ...] | None = ()  # None: not recorded (bundles from <= 1.0.1)
    shard_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "method": self.method,
            "hash_type": self.hash_type,
            "allow_symlinks": self.allow_symlinks,
            "ignore_paths": list(self.ignore_paths or ()),
        }
        if self.shard_size is not None:
            d["shard_size"] = self.shard_size
        return d

    @classmethod
    def from_dict(cls, d: object) -> Serialization:
        if not isinstance(d, Mapping):
            raise BundleError("statement: predicate.serialization is not an object")
        method = d.get("method", "files")
        hash_type = d.get("hash_type", "sha256")
        if method not in ("files", "shards"):
            raise BundleError(f"statement: unsupported serialization method {method!r}")
        if not isinstance(hash_type, str):
            raise BundleError("statement: serialization.hash_type is not a string")
        allow = d.get("allow_symlinks", False)
        # Bundles from the v0.2 compat path wrote "false" as a string.
        if isinstance(allow, str):
            allow = allow.lower() == "true"
        if not isinstance(allow, bool):
            raise BundleError("statement: serialization.allow_symlinks is not a boolean")
        ignores = d.get("ignore_paths")
        if ignores is not None and not isinstance(ignores, list):
            raise BundleError("statement: serialization.ignore_paths is not a list of strings")
        if ignores is not None and not all(isinstance(p, str) for p in ignores):
            raise BundleError("statement: serialization.ignore_paths is not a list of strings")
        shard_size: int | None = None
        if method == "shards":
            raw = d.get("shard_size")
            # Written as a JSON float (1000000000.0) because it went through a protobuf Struct.
            if (
                isinstance(raw, bool)
                or not isinstance(raw, int | float)
                or not math.isfinite(raw)
                or raw != int(raw)
                or raw <= 0
            ):
                raise BundleError(f"statement: invalid serialization.shard_size {raw!r}")
            shard_size = int(raw)
        recorded = None if ignores is None else tuple(ignores)
        return cls(method, hash_type, allow, recorded, shard_size)


def root_digest(resources: Sequence[Resource]) -> str:
    """SHA-256 over the raw bytes of every resource digest, in the listed order."""
    from mlsec.artifact import digest_of_digests

    return digest_of_digests(r.digest for r in resources)


@dataclass(frozen=True)
class Manifest:
    """What a signature covers: the model's name, its resources and how they were computed."""

    name: str
    resources: tuple[Resource, ...]
    serialization: Serialization = field(default_factory=Serialization)
    compat: bool = False  # parsed from a v0.1 (model_signing 0.2) statement: no root digest

    @property
    def root_digest(self) -> str:
        return root_digest(self.resources)

    @classmethod
    def from_artifact(
        cls, artifact: Artifact, *, extra_ignores: Sequence[str] = (), name: str | None = None
    ) -> Manifest:
        """The manifest ``model_signing`` would write for ``artifact`` (digests must be present).

        A single-file artifact's resource is named ``.`` as ``model_signing`` does.
        """
        if not artifact.files:
            raise SigningError(
                f"{artifact.root}: nothing to sign (no files left after exclusions)",
                hint="an empty model cannot be verified meaningfully; check --ignore",
            )
        resources = []
        for f in sorted(artifact.files, key=lambda f: sort_key(f.path)):
            if f.sha256 is None:
                raise ValueError("artifact digests must be computed before building a manifest")
            resources.append(Resource("." if not artifact.is_dir else f.path, "sha256", f.sha256))
        ignores = tuple(dict.fromkeys((*artifact.ignore_paths, *extra_ignores)))
        ser = Serialization(allow_symlinks=artifact.allow_symlinks, ignore_paths=ignores)
        return cls(name or artifact.name, tuple(resources), ser)

    def statement(self) -> dict[str, Any]:
        """The in-toto Statement v1 (predicate type model_signing v1.0) as a dict."""
        return {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": self.name, "digest": {"sha256": self.root_digest}}],
            "predicateType": PREDICATE_TYPE,
            "predicate": {
                "serialization": self.serialization.to_dict(),
                "resources": [r.to_dict() for r in self.resources],
            },
        }

    def payload(self) -> bytes:
        """The statement as compact JSON bytes (what the DSSE envelope carries)."""
        return json.dumps(self.statement(), separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_statement(cls, data: bytes) -> Manifest:
        """Parse and check a statement: type, predicate type, one subject, root digest."""
        try:
            doc = loads(data, "statement", BundleError)
        except BundleError as exc:
            if "duplicate key" in exc.message:  # signed JSON two readers can read two ways
                raise VerificationError(f"ambiguous signed {exc.message}") from None
            raise
        if not isinstance(doc, dict):
            raise BundleError("statement: payload is not a JSON object")
        if doc.get("_type") != STATEMENT_TYPE:
            raise BundleError(f"statement: _type is {doc.get('_type')!r}, not {STATEMENT_TYPE}")
        ptype = doc.get("predicateType")
        subjects = doc.get("subject")
        if not isinstance(subjects, list) or not subjects:
            raise BundleError("statement: no subject")
        if ptype == PREDICATE_TYPE_COMPAT:
            return cls._from_compat(subjects)
        if not isinstance(ptype, str):
            raise BundleError(f"statement: predicateType is {ptype!r}, not a string")
        if ptype != PREDICATE_TYPE:
            # A well-formed statement about something else (an SBOM attestation given as the
            # model's signature) does not verify this model: exit 1, as in the other direction.
            raise VerificationError(
                f"statement: predicateType is {ptype!r}, not {PREDICATE_TYPE}"
                " (is this an SBOM attestation rather than a model signature?)"
            )
        if len(subjects) != 1:
            raise BundleError(f"statement: expected one subject, got {len(subjects)}")
        subject = subjects[0]
        if not isinstance(subject, dict) or not isinstance(subject.get("digest"), dict):
            raise BundleError("statement: malformed subject")
        expected = subject["digest"].get("sha256")
        name = subject.get("name", "")
        predicate = doc.get("predicate")
        if not isinstance(predicate, dict):
            raise BundleError("statement: no predicate")
        ser = Serialization.from_dict(predicate.get("serialization", {}))
        raw_resources = predicate.get("resources")
        if not isinstance(raw_resources, list):
            raise BundleError("statement: predicate.resources is not a list")
        if not raw_resources:
            raise BundleError("statement: predicate.resources is empty (nothing was signed)")
        resources = tuple(_parse_resource(r) for r in raw_resources)
        check_unambiguous(resources)
        if not isinstance(expected, str) or root_digest(resources) != expected.lower():
            raise BundleError(
                f"statement: subject digest {expected} does not match the listed resources"
                f" ({root_digest(resources)})"
            )
        return cls(str(name), resources, ser)

    @classmethod
    def _from_compat(cls, subjects: list[Any]) -> Manifest:
        resources = []
        for s in subjects:
            if not isinstance(s, dict) or not isinstance(s.get("digest"), dict):
                raise BundleError("statement: malformed subject")
            resources.append(
                _parse_resource(
                    {
                        "name": s.get("name"),
                        "algorithm": "sha256",
                        "digest": s["digest"].get("sha256"),
                    }
                )
            )
        check_unambiguous(resources)
        return cls("", tuple(resources), Serialization(ignore_paths=None), compat=True)


def resource_key(name: str) -> str:
    """The file a resource name designates, for ambiguity checks: ``./a``, ``a//b`` and the
    NFC and NFD spellings of one name all designate one file."""
    return unicodedata.normalize("NFC", posixpath.normpath(name.replace("\\", "/")))


def check_unambiguous(resources: Sequence[Resource]) -> None:
    """Raise :class:`VerificationError` when two resources name the same file (or shard).

    A statement listing a file twice (with different digests) can be read two ways: one verifier
    keeps the first entry, another the last. What was signed must have one reading, so such a
    statement does not verify, whoever signed it.
    """
    seen: dict[str, str] = {}
    for r in resources:
        key = resource_key(r.name)
        if key in seen:
            first = seen[key]
            same = "listed twice" if first == r.name else f"and {first!r} name the same file"
            raise VerificationError(
                f"statement: ambiguous: resource {r.name!r} {same}; a signed manifest must"
                " list each file once"
            )
        seen[key] = r.name


def _parse_resource(r: object) -> Resource:
    if not isinstance(r, dict):
        raise BundleError("statement: a resource is not an object")
    name, algo, digest = r.get("name"), r.get("algorithm"), r.get("digest")
    if not isinstance(name, str) or not isinstance(algo, str) or not isinstance(digest, str):
        raise BundleError(f"statement: malformed resource {r!r:.120}")
    digest = digest.lower()
    if not _HEX.match(digest) or len(digest) % 2:
        raise BundleError(f"statement: resource {name!r} has a digest that is not hex")
    return Resource(name, algo, digest)


def sharded(algorithm: str) -> tuple[str, int] | None:
    """``("sha256", 1000000000)`` for ``sha256-sharded-1000000000``, else None."""
    m = _SHARDED.match(algorithm)
    return (m.group(1), int(m.group(2))) if m else None
