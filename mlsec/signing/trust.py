"""Trust material: what a signature must be signed by, in one type that yields its verifier.

The same rules hold for ``mlsec verify`` flags, ``mlsec admit`` flags and a policy's
``signature`` section: exactly one of a public key, a certificate chain, or a sigstore identity
with its issuer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlsec.errors import UsageError

if TYPE_CHECKING:
    from mlsec.policy.model import Policy
    from mlsec.signing.verifiers import Verifier

__all__ = ["TrustMaterial"]


@dataclass(frozen=True, slots=True)
class TrustMaterial:
    """Who may have signed: ``key``, or ``certificate_chain`` anchors, or ``identity`` +
    ``issuer`` (sigstore keyless, with an optional ``trust_config``; ``online`` refreshes the
    trust root, ``staging`` uses sigstore's staging instance)."""

    key: Path | None = None
    certificate_chain: tuple[Path, ...] = ()
    identity: str | None = None
    issuer: str | None = None
    trust_config: Path | None = None
    online: bool = False
    staging: bool = False

    @property
    def given(self) -> bool:
        """True when any trust material was given."""
        return bool(self.key or self.certificate_chain or self.identity or self.issuer)

    @classmethod
    def from_policy(cls, policy: Policy) -> TrustMaterial:
        """The trust material a policy's ``signature`` section names (paths already resolved)."""
        return cls(
            key=policy.signature_key,
            certificate_chain=tuple(policy.signature_certificate_chain),
            identity=policy.signature_identity,
            issuer=policy.signature_issuer,
        )

    def verifier(self) -> Verifier:
        """The verifier for this material; :class:`UsageError` (exit 2) unless exactly one kind
        is given, or keyless lacks its identity or issuer."""
        from mlsec.signing import (
            CertificateVerifier,
            KeyVerifier,
            SigstoreVerifier,
            load_public_key,
        )

        chosen = [bool(self.key), bool(self.certificate_chain), bool(self.identity or self.issuer)]
        if sum(chosen) != 1:
            raise UsageError(
                "give exactly one of --key, --certificate-chain, or --identity with --issuer"
            )
        if self.key is not None:
            return KeyVerifier(load_public_key(self.key))
        if self.certificate_chain:
            from mlsec.signing.signers import load_certificates

            anchors = [c for p in self.certificate_chain for c in load_certificates(str(p))]
            return CertificateVerifier(anchors)
        if not self.identity or not self.issuer:
            raise UsageError("keyless verification needs both --identity and --issuer")
        return SigstoreVerifier(
            self.identity,
            self.issuer,
            trust_config=str(self.trust_config) if self.trust_config else None,
            online=self.online,
            staging=self.staging,
        )
