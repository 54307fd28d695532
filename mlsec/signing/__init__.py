"""Sign and verify models in the OpenSSF model-signing v1.0 format (interoperable with
``model_signing``): a sigstore bundle v0.3 around a DSSE envelope of an in-toto statement.

>>> from mlsec.signing import KeySigner, KeyVerifier, load_private_key, load_public_key
>>> signed = sign_model("my-model", KeySigner(load_private_key("k.key")))  # doctest: +SKIP
>>> verify_model("my-model", signed.bundle, KeyVerifier(load_public_key("k.pub")))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlsec.signing.api import Signed, default_signature_path, sign_artifact, sign_model
    from mlsec.signing.bundle import MEDIA_TYPE, Bundle, Material
    from mlsec.signing.keys import (
        Curve,
        Passphrase,
        generate_keypair,
        key_hint,
        load_private_key,
        load_public_key,
    )
    from mlsec.signing.manifest import PREDICATE_TYPE, Manifest, Resource, Serialization
    from mlsec.signing.sbom import SBOM_PREDICATE_TYPE, sign_sbom, verify_sbom
    from mlsec.signing.signers import (
        CertificateSigner,
        KeySigner,
        Signer,
        SigstoreSigner,
        load_certificates,
    )
    from mlsec.signing.verify import (
        CertificateVerifier,
        Difference,
        KeyVerifier,
        SigstoreVerifier,
        Verification,
        Verifier,
        verify_model,
    )

# Submodules load on first use: `mlsec sign` does not pay for the SBOM or keyless code.
_LAZY: dict[str, str] = {
    "Bundle": "mlsec.signing.bundle",
    "CertificateSigner": "mlsec.signing.signers",
    "CertificateVerifier": "mlsec.signing.verify",
    "Curve": "mlsec.signing.keys",
    "Difference": "mlsec.signing.verify",
    "KeySigner": "mlsec.signing.signers",
    "KeyVerifier": "mlsec.signing.verify",
    "MEDIA_TYPE": "mlsec.signing.bundle",
    "Manifest": "mlsec.signing.manifest",
    "Material": "mlsec.signing.bundle",
    "PREDICATE_TYPE": "mlsec.signing.manifest",
    "Passphrase": "mlsec.signing.keys",
    "Resource": "mlsec.signing.manifest",
    "SBOM_PREDICATE_TYPE": "mlsec.signing.sbom",
    "Serialization": "mlsec.signing.manifest",
    "Signed": "mlsec.signing.api",
    "Signer": "mlsec.signing.signers",
    "SigstoreSigner": "mlsec.signing.signers",
    "SigstoreVerifier": "mlsec.signing.verify",
    "Verification": "mlsec.signing.verify",
    "Verifier": "mlsec.signing.verify",
    "default_signature_path": "mlsec.signing.api",
    "generate_keypair": "mlsec.signing.keys",
    "key_hint": "mlsec.signing.keys",
    "load_certificates": "mlsec.signing.signers",
    "load_private_key": "mlsec.signing.keys",
    "load_public_key": "mlsec.signing.keys",
    "sign_artifact": "mlsec.signing.api",
    "sign_model": "mlsec.signing.api",
    "sign_sbom": "mlsec.signing.sbom",
    "verify_model": "mlsec.signing.verify",
    "verify_sbom": "mlsec.signing.sbom",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlsec.signing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "MEDIA_TYPE",
    "PREDICATE_TYPE",
    "SBOM_PREDICATE_TYPE",
    "Bundle",
    "CertificateSigner",
    "CertificateVerifier",
    "Curve",
    "Difference",
    "KeySigner",
    "KeyVerifier",
    "Manifest",
    "Material",
    "Passphrase",
    "Resource",
    "Serialization",
    "Signed",
    "Signer",
    "SigstoreSigner",
    "SigstoreVerifier",
    "Verification",
    "Verifier",
    "default_signature_path",
    "generate_keypair",
    "key_hint",
    "load_certificates",
    "load_private_key",
    "load_public_key",
    "sign_artifact",
    "sign_model",
    "sign_sbom",
    "verify_model",
    "verify_sbom",
]
