"""Verifiers: one protocol, three methods (key, certificate chain, sigstore keyless).

A verifier checks a bundle's signature and returns the signed payload; comparing the payload's
manifest with the model is :func:`mlsec.signing.verify.verify_model`'s job.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from mlsec.errors import BundleError, VerificationError
from mlsec.signing.bundle import Bundle, Material
from mlsec.signing.dsse import pae, pae_compat
from mlsec.signing.keys import hash_for, key_hint

if TYPE_CHECKING:  # x509 costs ~40 ms to import: only the certificate method pays for it
    from cryptography import x509

__all__ = ["CertificateVerifier", "KeyVerifier", "SigstoreVerifier", "Verifier"]

_MAX_TRUST_CONFIG = 16 * 1024 * 1024  # a sigstore ClientTrustConfig is a few KiB


class Verifier(Protocol):
    """Checks a bundle's signature; returns the signed payload and a description of the signer."""

    method: str

    def verify_signature(self, bundle: Bundle) -> tuple[bytes, str]: ...


def _ecdsa_ok(
    key: ec.EllipticCurvePublicKey, sig: bytes, msg: bytes, algo: hashes.HashAlgorithm
) -> bool:
    try:
        key.verify(sig, msg, ec.ECDSA(algo))
    except InvalidSignature:
        return False
    return True


def _check_envelope_sig(
    key: ec.EllipticCurvePublicKey, bundle: Bundle, who: str, compat_hash: hashes.HashAlgorithm
) -> None:
    algo = hash_for(key)
    if _ecdsa_ok(key, bundle.signature, pae(bundle.payload, bundle.payload_type), algo):
        return
    # model_signing 0.2 signed a buggy PAE; accept it so 2024 bundles still verify.
    if _ecdsa_ok(
        key, bundle.signature, pae_compat(bundle.payload, bundle.payload_type), compat_hash
    ):
        return
    raise VerificationError(f"signature does not verify with {who}")


class KeyVerifier:
    """Verifies key-method bundles with an EC public key."""

    method = "key"

    def __init__(self, key: ec.EllipticCurvePublicKey) -> None:
        self._key = key

    def verify_signature(self, bundle: Bundle) -> tuple[bytes, str]:
        if bundle.material is not Material.PUBLIC_KEY:
            raise VerificationError(
                f"the signature was made with the {bundle.material.value} method, not with a key",
                hint="verify with --certificate-chain or --identity/--issuer instead",
            )
        hint = key_hint(self._key)
        if bundle.key_hint and bundle.key_hint.lower() != hint:
            raise VerificationError(
                f"signed by another key (bundle key hint {bundle.key_hint}, given key {hint})"
            )
        _check_envelope_sig(self._key, bundle, f"public key {hint[:16]}…", hash_for(self._key))
        return bundle.payload, f"public key sha256:{hint}"


def _can_issue(cert: x509.Certificate, below: int) -> bool:
    """Whether ``cert`` may issue a certificate that has ``below`` CA certificates under it."""
    from cryptography import x509

    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        # X.509 v1 roots (no extensions) are CAs by convention when explicitly trusted.
        return cert.version is x509.Version.v1
    if not bc.ca or (bc.path_length is not None and below > bc.path_length):
        return False
    try:
        return bool(cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign)
    except x509.ExtensionNotFound:
        return True


def _valid_at(cert: x509.Certificate, at: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= at <= cert.not_valid_after_utc


def _name(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


class CertificateVerifier:
    """Verifies certificate-method bundles against trust anchors (a CA file, possibly several).

    The chain must be valid at ``at`` (default: now). ``model_signing`` checks it at the leaf's
    notBefore instead, which accepts signatures from certificates that expired long ago; mlsec
    does not, because a bundle carries no trusted time of signing.
    """

    method = "certificate"

    def __init__(
        self, anchors: Sequence[x509.Certificate], *, at: dt.datetime | None = None
    ) -> None:
        if not anchors:
            raise BundleError("no trust anchor given (--certificate-chain)")
        self._anchors = list(anchors)
        self._at = at

    def verify_signature(self, bundle: Bundle) -> tuple[bytes, str]:
        from cryptography import x509

        if bundle.material is Material.PUBLIC_KEY:
            raise VerificationError(
                "the signature was made with a key, not a certificate", hint="verify with --key"
            )
        try:
            certs = [x509.load_der_x509_certificate(c) for c in bundle.certificates]
        except ValueError:
            raise BundleError("bundle: a certificate in the bundle is not valid DER") from None
        leaf, pool = certs[0], certs[1:]
        at = self._at or dt.datetime.now(dt.UTC)
        self._check_chain(leaf, pool, at)
        self._check_usage(leaf)
        key = leaf.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise VerificationError(f"certificate {_name(leaf)}: key is not ECDSA")
        _check_envelope_sig(key, bundle, f"certificate {_name(leaf)}", hashes.SHA256())
        return bundle.payload, f"certificate {_name(leaf)}"

    def _check_chain(
        self, leaf: x509.Certificate, pool: list[x509.Certificate], at: dt.datetime
    ) -> None:
        if not _valid_at(leaf, at):
            raise VerificationError(
                f"certificate {_name(leaf)} is not valid at {at:%Y-%m-%d %H:%M:%SZ} "
                f"(valid {leaf.not_valid_before_utc:%Y-%m-%d} to "
                f"{leaf.not_valid_after_utc:%Y-%m-%d})"
            )
        anchors = {a.fingerprint(hashes.SHA256()) for a in self._anchors}
        current = leaf
        for below in range(8):
            if current.fingerprint(hashes.SHA256()) in anchors:
                return
            for cand in (*self._anchors, *pool):
                if cand.subject != current.issuer or cand is current:
                    continue
                if not _issued_by(current, cand):
                    continue
                if not _can_issue(cand, below):
                    continue
                if not _valid_at(cand, at):
                    continue
                if cand.fingerprint(hashes.SHA256()) in anchors:
                    return
                current = cand
                break
            else:
                raise VerificationError(
                    f"certificate {_name(leaf)} does not chain to a trusted CA "
                    f"(no valid issuer for {_name(current)})"
                )
        raise VerificationError(f"certificate {_name(leaf)}: chain too long")

    @staticmethod
    def _check_usage(leaf: x509.Certificate) -> None:
        from cryptography import x509
        from cryptography.x509.oid import ExtendedKeyUsageOID

        ok = False
        with contextlib.suppress(x509.ExtensionNotFound):
            ok = leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
        try:
            eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            ok = ok or ExtendedKeyUsageOID.CODE_SIGNING in eku
        except x509.ExtensionNotFound:
            pass
        if not ok:
            raise VerificationError(
                f"certificate {_name(leaf)} is not for signing "
                "(needs KeyUsage digitalSignature or ExtendedKeyUsage codeSigning)"
            )


class SigstoreVerifier:
    """Keyless: a Fulcio certificate for ``identity`` issued via ``issuer``, checked offline.

    The trust root is the production one shipped inside sigstore-python (no network), or the
    ClientTrustConfig JSON at ``trust_config``; ``online=True`` refreshes it over TUF.
    """

    method = "sigstore"

    def __init__(
        self,
        identity: str,
        issuer: str,
        *,
        trust_config: str | None = None,
        online: bool = False,
        staging: bool = False,
    ) -> None:
        self.identity, self.issuer = identity, issuer
        self._trust_config, self._online, self._staging = trust_config, online, staging

    def verify_signature(self, bundle: Bundle) -> tuple[bytes, str]:
        if bundle.material is not Material.SIGSTORE:
            raise VerificationError(
                f"the signature was made with the {bundle.material.value} method, not keyless"
            )
        try:
            import json

            from sigstore.models import Bundle as SigstoreBundle
            from sigstore.models import ClientTrustConfig
            from sigstore.verify import Verifier as SigstoreApi
            from sigstore.verify import policy
        except ImportError:
            raise BundleError(
                "keyless verification needs sigstore-python",
                hint="sigstore is a dependency of mlsec: reinstall mlsec",
            ) from None
        try:
            if self._trust_config:
                with open(self._trust_config, encoding="utf-8") as f:
                    config = ClientTrustConfig.from_json(f.read(_MAX_TRUST_CONFIG))
            elif self._staging:
                config = ClientTrustConfig.staging(offline=not self._online)
            else:
                config = ClientTrustConfig.production(offline=not self._online)
            api = SigstoreApi(trusted_root=config.trusted_root)
        except Exception as exc:
            raise BundleError(
                f"sigstore: cannot load the trust root ({_first_line(exc)})"
            ) from None
        try:
            sb = SigstoreBundle.from_json(json.dumps(dict(bundle.raw)))
        except Exception as exc:
            raise BundleError(f"bundle: not a valid sigstore bundle ({_first_line(exc)})") from None
        try:
            ptype, payload = api.verify_dsse(
                sb, policy.Identity(identity=self.identity, issuer=self.issuer)
            )
        except Exception as exc:
            raise VerificationError(f"sigstore: {_first_line(exc)}") from None
        if ptype != bundle.payload_type:
            raise VerificationError("sigstore: payload type changed under verification")
        return payload, f"sigstore identity {self.identity} (issuer {self.issuer})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
