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
    from mlsec.registry import Reference, Store
    from mlsec.scan import ScanOptions, ScanReport
    from mlsec.signing.verify import Verifier

Scanner = Callable[["Artifact", "ScanOptions"], "ScanReport"]

__all__ = ["NO_TRUST", "admit", "admit_reference", "policy_verifier", "resolve_target"]

NO_TRUST = (
    "a signature needs trust material: --key, --certificate-chain, or --identity with --issuer "
    "(or signature.key / certificate_chain / identity in the policy)"
)


def resolve_target(target: str) -> Path | Reference:
    """What ``admit TARGET`` judges: an existing path, else a registry / OCI-layout / local-store
    reference. A target that is neither is an :class:`ArtifactError` saying the path does not
    exist (and why it is no reference either), never a registry error about a host named ``.``.
    """
    from mlsec.errors import ArtifactError, RegistryError
    from mlsec.registry import RefKind, parse_reference

    if os.path.lexists(target):
        return Path(target)
    if target.startswith(("/", "./", "../", "~")) or target in (".", "..") or os.sep in target[:1]:
        raise ArtifactError(f"{target}: no such file or directory")
    try:
        reference = parse_reference(target)
    except RegistryError as exc:
        raise ArtifactError(
            f"{target}: no such file or directory (nor a valid reference: {exc.message})"
        ) from None
    local = reference.layout
    bare = reference.kind is RefKind.LAYOUT and not target.startswith("oci:")
    if bare and local is not None and not local.exists():
        raise ArtifactError(
            f"{target}: no such file or directory, nor a model in the local store ({local})"
        )
    return reference


def policy_verifier(policy: Policy) -> Verifier | None:
    """The verifier the policy's own trust material describes (None if it names none)."""
    from mlsec.signing.trust import TrustMaterial

    trust = TrustMaterial.from_policy(policy)
    return trust.verifier() if trust.given else None


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
