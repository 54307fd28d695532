"""Attestations: in-toto statements about a model (scan verdict, SBOM, SLSA provenance), in a
DSSE envelope inside a sigstore bundle, signed with the model-signing signers.

>>> from mlsec.attest import attest, verify_attestation  # doctest: +SKIP
"""

from __future__ import annotations

from mlsec.attest.api import (
    SCHEMA,
    AttestationCheck,
    Attested,
    attest,
    check_about,
    check_attestation_for,
    read_statement,
    verify_attestation,
)
from mlsec.attest.predicates import (
    PROVENANCE_BUILD_TYPE,
    PROVENANCE_PREDICATE_TYPE,
    SBOM_PREDICATE_TYPE,
    SCAN_PREDICATE_TYPE,
    Kind,
    findings_digest,
    kind_of,
    load_provenance,
    predicate_type,
    provenance_predicate,
    ruleset_digest,
    scan_predicate,
    summarize,
)
from mlsec.attest.statement import (
    ROOT_ANNOTATION,
    Statement,
    Subject,
    compare_digests,
    model_subjects,
)

PREDICATE_ANNOTATION = "dev.mlsec.predicate-type"
"""The annotation naming an attached attestation's predicate type on its referrer manifest."""


def default_attestation_path(model: str, kind: Kind) -> str:
    """``<model>.<kind>.att`` beside the model (the name ``pull --with-referrers`` writes too)."""
    import os

    p = os.path.abspath(model)
    return f"{p}.{kind.value}.att"


__all__ = [
    "PREDICATE_ANNOTATION",
    "PROVENANCE_BUILD_TYPE",
    "PROVENANCE_PREDICATE_TYPE",
    "ROOT_ANNOTATION",
    "SBOM_PREDICATE_TYPE",
    "SCAN_PREDICATE_TYPE",
    "SCHEMA",
    "AttestationCheck",
    "Attested",
    "Kind",
    "Statement",
    "Subject",
    "attest",
    "check_about",
    "check_attestation_for",
    "compare_digests",
    "default_attestation_path",
    "findings_digest",
    "kind_of",
    "load_provenance",
    "model_subjects",
    "predicate_type",
    "provenance_predicate",
    "read_statement",
    "ruleset_digest",
    "scan_predicate",
    "summarize",
    "verify_attestation",
]
