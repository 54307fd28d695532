"""Make and check attestations: a statement about the model, signed like a model signature."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlsec.artifact import Artifact
from mlsec.attest.predicates import summarize
from mlsec.attest.statement import Statement, Subject, compare_subjects, encode, model_subjects
from mlsec.errors import BundleError, SigningError, VerificationError
from mlsec.schemas import Schema
from mlsec.signing.bundle import Bundle
from mlsec.signing.dsse import IN_TOTO_PAYLOAD_TYPE
from mlsec.signing.signers import Signer
from mlsec.signing.verify import Difference, Verifier

__all__ = [
    "SCHEMA",
    "AttestationCheck",
    "Attested",
    "attest",
    "check_about",
    "check_attestation_for",
    "read_statement",
    "verify_attestation",
]

SCHEMA = Schema.VERIFY_ATTESTATION


@dataclass(frozen=True)
class Attested:
    """A signed attestation and what it says."""

    bundle: Bundle
    statement: Statement


def _subjects(artifact: Artifact) -> tuple[Subject, tuple[Subject, ...]]:
    if not artifact.has_digests:
        raise ValueError("artifact digests must be computed before attesting")
    root, *files = model_subjects(artifact)
    return root, tuple(files)


def _symlinks(artifact: Artifact) -> list[str]:
    return [i.path for i in artifact.ignored if i.reason.startswith("symlink")]


def attest(artifact: Artifact, predicate_type: str, predicate: Any, signer: Signer) -> Attested:
    """Sign a statement with ``predicate`` whose subject is ``artifact`` (digests computed).

    >>> from mlsec.attest import attest, provenance_predicate, PROVENANCE_PREDICATE_TYPE
    >>> pred = provenance_predicate("https://ci.example/runner")
    >>> attest(art, PROVENANCE_PREDICATE_TYPE, pred, signer).bundle.to_json()  # doctest: +SKIP
    """
    links = _symlinks(artifact)
    if links:
        raise SigningError(
            f"{links[0]}: is a symlink"
            + (f" (and {len(links) - 1} more)" if len(links) > 1 else "")
            + "; a loader would follow it, but symlinks are not attested",
            hint="replace the link with the file, or --ignore it",
        )
    root, files = _subjects(artifact)
    try:
        summarize(predicate_type, predicate)
    except BundleError as exc:  # never sign a predicate `verify --attestation` would refuse
        raise SigningError(exc.message) from None
    payload = encode(root.name, root.sha256, files, predicate_type, predicate)
    bundle = signer.sign(payload, IN_TOTO_PAYLOAD_TYPE)
    return Attested(bundle, Statement(root.name, root.sha256, files, predicate_type, predicate))


def read_statement(bundle: Bundle) -> Statement:
    """The statement a bundle carries, *without* checking its signature (for "is this about
    that model?" checks before a push; :func:`verify_attestation` checks the signature)."""
    if bundle.payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise BundleError(f"payload type is {bundle.payload_type!r}, not in-toto")
    return Statement.parse(bundle.payload)


def check_about(statement: Statement, artifact: Artifact) -> list[Difference]:
    """How ``artifact`` differs from the statement's subjects (empty: it is about this model)."""
    return compare_subjects(statement, artifact.with_digests())


@dataclass(frozen=True)
class AttestationCheck:
    """The outcome of verifying an attestation over a model (``ok``: nothing differs)."""

    model: str
    method: str
    signer: str
    predicate_type: str
    root_digest: str
    files: int
    summary: dict[str, Any] = field(default_factory=dict)
    differences: tuple[Difference, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA.value,
            "ok": self.ok,
            "model": self.model,
            "method": self.method,
            "signer": self.signer,
            "predicate_type": self.predicate_type,
            "root_digest": f"sha256:{self.root_digest}",
            "files": self.files,
            "summary": self.summary,
            "differences": [d.to_dict() for d in self.differences],
        }

    def line(self) -> str:
        if self.ok:
            return (
                f"{self.model}: attestation {self.predicate_type} verified,"
                f" {self.files} file{'' if self.files == 1 else 's'}, signed by {self.signer}"
            )
        return f"{self.model}: " + "; ".join(d.line() for d in self.differences)


def verify_attestation(
    artifact: Artifact, bundle: Bundle, verifier: Verifier, *, model: str | None = None
) -> AttestationCheck:
    """Verify the signature of ``bundle``, then that its statement is about ``artifact``.

    Raises :class:`VerificationError` (``.result`` holds the :class:`AttestationCheck`) for a bad
    signature or another model, :class:`BundleError` for a malformed attestation.
    """
    payload, signer = verifier.verify_signature(bundle)
    if bundle.payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise VerificationError(f"payload type is {bundle.payload_type!r}, not in-toto")
    statement = Statement.parse(payload)
    summary = summarize(statement.predicate_type, statement.predicate)
    art = artifact.with_digests()
    diffs = compare_subjects(statement, art)
    # A symlink the walk did not follow is still a file a loader would open.
    why = "symlink; attestations do not cover symlinks"
    diffs.extend(Difference(p, "extra", reason=why) for p in _symlinks(art))
    if statement.predicate_type == "https://cyclonedx.org/bom" and isinstance(
        statement.predicate, dict
    ):
        from mlsec.signing.sbom import compare_files

        seen = {(d.path, d.status) for d in diffs}
        diffs.extend(
            Difference(d.path, d.status, d.expected, d.actual, f"SBOM: {d.reason}".rstrip(": "))
            for d in compare_files(statement.predicate, art)
            if (d.path, d.status) not in seen
        )
    result = AttestationCheck(
        model=model or str(artifact.root),
        method=verifier.method,
        signer=signer,
        predicate_type=statement.predicate_type,
        root_digest=statement.root_digest,
        files=len(statement.files) or len(art.files),
        summary=summary,
        differences=tuple(diffs),
    )
    if not result.ok:
        raise VerificationError(result.line(), result=result)
    return result


def check_attestation_for(content: bytes, name: str, artifact: Artifact) -> str:
    """The predicate type of the bundle ``content`` if its statement is about ``artifact``
    (root digest and, when listed, every file); else :class:`UsageError` (exit 2).

    The signature is not checked against a key here: only that the bundle is *this* model's
    (whoever verifies the pulled model checks the signer).
    """
    from mlsec.errors import UsageError

    try:
        statement = read_statement(Bundle.from_json(content))
    except BundleError as exc:
        raise UsageError(f"{name}: not an attestation bundle: {exc.message}") from None
    except VerificationError as exc:
        raise UsageError(f"{name}: {exc.message}") from None
    diffs = check_about(statement, artifact)
    if diffs:
        raise UsageError(
            f"{name}: not about {artifact.root}: " + "; ".join(d.line() for d in diffs[:5]),
            hint="attest this model (mlsec attest) and attach that file",
        )
    return statement.predicate_type
