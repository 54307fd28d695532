"""``admit``: the one call behind ``mlsec admit``."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsec.errors import UsageError
from mlsec.policy.evaluate import Decision, evaluate
from mlsec.policy.evidence import gather
from mlsec.policy.model import Policy, load_policy
from mlsec.progress import Progress

if TYPE_CHECKING:
    from mlsec.artifact import Artifact
    from mlsec.crypt import Identity
    from mlsec.ignore import IgnoreFile
    from mlsec.registry import Store
    from mlsec.scan import ScanOptions, ScanReport
    from mlsec.signing.verify import Verifier

Scanner = Callable[["Artifact", "ScanOptions"], "ScanReport"]

__all__ = ["NO_TRUST", "admit", "admit_reference", "policy_verifier"]

NO_TRUST = (
    "a signature needs trust material: --key, --certificate-chain, or --identity with --issuer "
    "(or signature.key / certificate_chain / identity in the policy)"
)


def policy_verifier(policy: Policy) -> Verifier | None:
    """The verifier the policy's own trust material describes (None if it names none)."""
    from mlsec.signing import CertificateVerifier, KeyVerifier, SigstoreVerifier, load_public_key

    if policy.signature_key is not None:
        return KeyVerifier(load_public_key(policy.signature_key))
    if policy.signature_certificate_chain:
        from mlsec.signing.signers import load_certificates

        anchors = [c for p in policy.signature_certificate_chain for c in load_certificates(str(p))]
        return CertificateVerifier(anchors)
    if policy.signature_identity and policy.signature_issuer:
        return SigstoreVerifier(policy.signature_identity, policy.signature_issuer)
    return None


def admit(
    path: str | os.PathLike[str],
    policy: Policy | str | os.PathLike[str],
    *,
    signature: str | os.PathLike[str] | None = None,
    verifier: Verifier | None = None,
    sbom: str | os.PathLike[str] | None = None,
    audit: bool = False,
    osv_url: str | None = None,
    progress: Progress | None = None,
    source: dict[str, Any] | None = None,
    ignore: IgnoreFile | None = None,
    scanner: Scanner | None = None,
) -> Decision:
    """Gather the evidence about the model at ``path`` and evaluate ``policy`` (a
    :class:`Policy`, a policy file, or a preset name) over it.

    ``ignore`` (an :class:`~mlsec.ignore.IgnoreFile`) accepts findings and vulnerabilities: they
    stay in the evidence as suppressed and no rule counts them.

    The verifier defaults to the policy's trust material. A signature without any trust material
    is a :class:`UsageError` (exit 2): mlsec never "verifies" against nothing.

    >>> decision = admit("model", "default", signature="model.sig", verifier=v)  # doctest: +SKIP
    >>> decision.allowed, [c.message for c in decision.denials]  # doctest: +SKIP
    """
    if not isinstance(policy, Policy):
        policy = load_policy(policy)
    if signature is not None and verifier is None:
        verifier = policy_verifier(policy)
        if verifier is None:
            raise UsageError(NO_TRUST)
    evidence = gather(
        path,
        signature=signature,
        verifier=verifier if signature is not None else None,
        sbom=sbom,
        audit=audit,
        osv_url=osv_url,
        allow_globals=policy.allow_globals,
        progress=progress,
        ignore=ignore,
        scanner=scanner,
    )
    if source is not None:
        evidence["source"] = source
        evidence["artifact"]["path"] = source["reference"]
    return evaluate(policy, evidence)


def admit_reference(
    ref: str,
    policy: Policy | str | os.PathLike[str],
    *,
    store: Store | None = None,
    identities: Sequence[Identity] = (),
    signature: str | os.PathLike[str] | None = None,
    verifier: Verifier | None = None,
    sbom: str | os.PathLike[str] | None = None,
    audit: bool = False,
    osv_url: str | None = None,
    progress: Progress | None = None,
    ignore: IgnoreFile | None = None,
    scanner: Scanner | None = None,
) -> Decision:
    """Admit the model at registry (or OCI layout) reference ``ref``: pull it into a temporary
    directory with its referrers (every blob verified; opened with ``identities`` when sealed),
    then :func:`admit` it. An attached signature is used when trust material is at hand, an
    attached SBOM when none is given. The evidence's ``source`` names the reference and the
    manifest digest that was judged."""
    from mlsec.registry import parse_reference, pull
    from mlsec.registry.sealed import pull_decrypted

    if not isinstance(policy, Policy):
        policy = load_policy(policy)
    if verifier is None and (signature is not None or policy.signature_required):
        verifier = policy_verifier(policy)
    reference = parse_reference(ref)
    with tempfile.TemporaryDirectory(prefix="mlsec-admit-") as tmp:
        dest = Path(tmp) / "model"
        if identities:
            result = pull_decrypted(
                reference, dest, identities, store=store, progress=progress, with_referrers=True
            )
        else:
            result = pull(reference, dest, store=store, progress=progress, with_referrers=True)
        attached_sig = dest.with_name("model.sig")
        attached_bom = dest.with_name("model.cdx.json")
        if signature is None and verifier is not None and attached_sig.is_file():
            signature = attached_sig
        if sbom is None and attached_bom.is_file():
            sbom = attached_bom
        return admit(
            dest,
            policy,
            signature=signature,
            verifier=verifier if signature is not None else None,
            sbom=sbom,
            audit=audit,
            osv_url=osv_url,
            progress=progress,
            ignore=ignore,
            scanner=scanner,
            source={
                "reference": str(reference),
                "digest": result.digest,
                "signature": "attached" if signature == attached_sig else None,
                "sbom": "attached" if sbom == attached_bom else None,
            },
        )
