"""``admit``: the one call behind ``mlsec admit``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from mlsec.errors import UsageError
from mlsec.policy.evaluate import Decision, evaluate
from mlsec.policy.evidence import gather
from mlsec.policy.model import Policy, load_policy
from mlsec.progress import Progress

if TYPE_CHECKING:
    from mlsec.signing.verify import Verifier

__all__ = ["admit", "policy_verifier"]


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
) -> Decision:
    """Gather the evidence about the model at ``path`` and evaluate ``policy`` (a
    :class:`Policy`, a policy file, or a preset name) over it.

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
            raise UsageError(
                "a signature needs trust material: --key, --certificate-chain, or --identity "
                "with --issuer (or signature.key / certificate_chain / identity in the policy)"
            )
    evidence = gather(
        path,
        signature=signature,
        verifier=verifier if signature is not None else None,
        sbom=sbom,
        audit=audit,
        osv_url=osv_url,
        allow_globals=policy.allow_globals,
        progress=progress,
    )
    return evaluate(policy, evidence)
