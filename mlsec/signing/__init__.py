"""Sign and verify models in the OpenSSF model-signing v1.0 format (interoperable with
``model_signing``): a sigstore bundle v0.3 around a DSSE envelope of an in-toto statement.

>>> from mlsec.signing import KeySigner, KeyVerifier, load_private_key, load_public_key
>>> signed = sign_model("my-model", KeySigner(load_private_key("k.key")))  # doctest: +SKIP
>>> verify_model("my-model", signed.bundle, KeyVerifier(load_public_key("k.pub")))  # doctest: +SKIP
"""

from __future__ import annotations

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
