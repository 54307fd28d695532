"""The in-toto Statement v1 of an attestation and its subjects (the model, then each file).

Subject layout (see docs/attestations.md): the first entry is the model itself, named after it,
with the root digest ``mlsec sign`` uses (SHA-256 over the file digests in manifest order) and the
annotation ``{"mlsec.dev/subject": "model"}``; every other entry is one file, named by its
root-relative POSIX path, with its SHA-256 (equal to its OCI layer digest once pushed).

Parsing never opens a path named in a statement: names are compared with the model's walk only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlsec.artifact import Artifact, sort_key
from mlsec.errors import BundleError, VerificationError
from mlsec.jsonsafe import loads
from mlsec.signing.manifest import STATEMENT_TYPE, Manifest, Resource, resource_key, root_digest
from mlsec.signing.verify import Difference

__all__ = [
    "ROOT_ANNOTATION",
    "ROOT_ANNOTATION_VALUE",
    "Statement",
    "Subject",
    "compare_digests",
    "compare_subjects",
    "model_subjects",
]

ROOT_ANNOTATION = "mlsec.dev/subject"
ROOT_ANNOTATION_VALUE = "model"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class Subject:
    """One statement subject: a name and its SHA-256 (``root``: the model-as-a-whole entry)."""

    name: str
    sha256: str
    root: bool = False

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "digest": {"sha256": self.sha256}}
        if self.root:
            d["annotations"] = {ROOT_ANNOTATION: ROOT_ANNOTATION_VALUE}
        return d


def model_subjects(artifact: Artifact) -> tuple[Subject, ...]:
    """The model's root subject followed by one subject per file (digests must be computed)."""
    manifest = Manifest.from_artifact(artifact)
    files = sorted(artifact.files, key=lambda f: sort_key(f.path))
    return (
        Subject(artifact.name, manifest.root_digest, root=True),
        *(Subject(f.path, f.sha256 or "") for f in files),
    )


@dataclass(frozen=True)
class Statement:
    """A parsed in-toto Statement v1: the model's root digest, its files, the predicate.

    ``files`` is empty for a statement with a single subject (a model signature, or an SBOM
    attestation made by ``mlsec sign --sbom``): those bind the model by root digest only.
    """

    model_name: str
    root_digest: str
    files: tuple[Subject, ...]
    predicate_type: str
    predicate: Any

    def payload(self) -> bytes:
        return encode(
            self.model_name, self.root_digest, self.files, self.predicate_type, self.predicate
        )

    @classmethod
    def parse(cls, data: bytes) -> Statement:
        """Parse and check a statement; :class:`BundleError` when malformed (exit 2),
        :class:`VerificationError` when it can be read two ways (duplicate keys or subjects)."""
        try:
            doc = loads(data, "attestation statement", BundleError)
        except BundleError as exc:
            if "duplicate key" in exc.message:  # signed JSON two readers can read two ways
                raise VerificationError(f"ambiguous signed {exc.message}") from None
            raise
        if not isinstance(doc, dict):
            raise BundleError("attestation: the statement is not a JSON object")
        if doc.get("_type") != STATEMENT_TYPE:
            raise BundleError(f"attestation: _type is {doc.get('_type')!r}, not {STATEMENT_TYPE}")
        ptype = doc.get("predicateType")
        if not isinstance(ptype, str) or not ptype:
            raise BundleError("attestation: predicateType is missing or not a string")
        if "predicate" not in doc:
            raise BundleError("attestation: no predicate")
        raw = doc.get("subject")
        if not isinstance(raw, list) or not raw:
            raise BundleError("attestation: no subject")
        subjects = [_parse_subject(s, i) for i, s in enumerate(raw)]
        if len(subjects) == 1:
            # A model signature or a `sign --sbom` attestation: the one subject is the model.
            s = subjects[0]
            return cls(s.name, s.sha256, (), ptype, doc["predicate"])
        roots = [s for s in subjects if s.root]
        if len(roots) != 1:
            raise BundleError(
                f"attestation: {len(roots)} subjects are annotated as the model "
                f"({ROOT_ANNOTATION}: {ROOT_ANNOTATION_VALUE}); exactly one must be"
            )
        files = tuple(s for s in subjects if not s.root)
        seen: dict[str, str] = {}
        for f in files:
            key = resource_key(f.name)
            if key in seen:
                raise VerificationError(
                    f"attestation: ambiguous: subject {f.name!r} and {seen[key]!r} name the"
                    " same file"
                )
            seen[key] = f.name
        ordered = sorted(files, key=lambda f: sort_key(f.name))
        expected = root_digest([Resource(f.name, "sha256", f.sha256) for f in ordered])
        if expected != roots[0].sha256:
            raise BundleError(
                f"attestation: model subject digest {roots[0].sha256} does not match its file"
                f" subjects ({expected})"
            )
        return cls(roots[0].name, roots[0].sha256, tuple(ordered), ptype, doc["predicate"])


def _parse_subject(s: object, i: int) -> Subject:
    if not isinstance(s, dict):
        raise BundleError(f"attestation: subject[{i}] is not an object")
    name, digest = s.get("name"), s.get("digest")
    if not isinstance(name, str) or not isinstance(digest, dict):
        raise BundleError(f"attestation: subject[{i}] has no name or no digest")
    sha = digest.get("sha256")
    if not isinstance(sha, str) or not _SHA256.match(sha.lower()):
        raise BundleError(f"attestation: subject {name!r} has no SHA-256 digest")
    notes = s.get("annotations")
    if notes is not None and not isinstance(notes, dict):
        raise BundleError(f"attestation: subject {name!r}: annotations is not an object")
    root = isinstance(notes, Mapping) and notes.get(ROOT_ANNOTATION) == ROOT_ANNOTATION_VALUE
    return Subject(name, sha.lower(), root)


def encode(
    name: str, root: str, files: Sequence[Subject], predicate_type: str, predicate: Any
) -> bytes:
    """The statement as compact JSON bytes (what the DSSE envelope carries)."""
    subjects = [Subject(name, root, root=True), *files] if files else [Subject(name, root)]
    doc = {
        "_type": STATEMENT_TYPE,
        "subject": [s.to_dict() for s in subjects],
        "predicateType": predicate_type,
        "predicate": predicate,
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def compare_subjects(statement: Statement, artifact: Artifact) -> list[Difference]:
    """How the model on disk differs from the statement's subjects (empty: it is this model)."""
    return compare_digests(statement, {f.path: f.sha256 or "" for f in artifact.files})


def compare_digests(statement: Statement, files: Mapping[str, str]) -> list[Difference]:
    """How ``files`` (root-relative path → SHA-256 hex) differ from the statement's subjects.

    ``files`` can come from a walk, or from an OCI manifest's layers (title → digest without the
    ``sha256:`` prefix): an attestation is checked against a registry without a layer download.
    """
    diffs: list[Difference] = []
    ordered = sorted(files, key=sort_key)
    root = root_digest([Resource(p, "sha256", files[p]) for p in ordered])
    if root != statement.root_digest:
        why = "model root digest differs from the attestation subject"
        diffs.append(
            Difference(".", "changed", expected=statement.root_digest, actual=root, reason=why)
        )
    if not statement.files:
        return diffs
    listed = {f.name: f.sha256 for f in statement.files}
    for name, digest in listed.items():
        if name not in files:
            diffs.append(Difference(name, "missing", expected=digest, reason="an attested file"))
        elif files[name] != digest:
            diffs.append(Difference(name, "changed", expected=digest, actual=files[name]))
    diffs.extend(
        Difference(p, "extra", reason="not an attestation subject")
        for p in files
        if p not in listed
    )
    diffs.sort(key=lambda d: sort_key(d.path))
    return diffs
