"""Signers: one protocol, three methods (key, certificate, sigstore keyless).

A signer turns a payload (the in-toto statement bytes) into a :class:`~mlsec.signing.bundle.Bundle`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mlsec.errors import SigningError
from mlsec.signing.bundle import Bundle
from mlsec.signing.dsse import IN_TOTO_PAYLOAD_TYPE, pae
from mlsec.signing.keys import hash_for, key_hint

if TYPE_CHECKING:  # x509 costs ~40 ms to import: only the certificate method pays for it
    from cryptography import x509

__all__ = ["CertificateSigner", "KeySigner", "Signer", "SigstoreSigner", "load_certificates"]

_MAX_TRUST_CONFIG = 16 * 1024 * 1024  # a sigstore ClientTrustConfig is a few KiB
_MAX_PEM = 16 << 20  # a certificate chain is a few KiB; a trust bundle can be large


class Signer(Protocol):
    """Signs a DSSE payload and returns the bundle that carries it."""

    def sign(self, payload: bytes, payload_type: str = IN_TOTO_PAYLOAD_TYPE) -> Bundle: ...


class KeySigner:
    """ECDSA with a private key; the bundle names the public key by its hint."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "KeySigner(<private key>)"

    def _sig(self, payload: bytes, payload_type: str) -> bytes:
        return self._key.sign(pae(payload, payload_type), ec.ECDSA(hash_for(self._key)))

    def sign(self, payload: bytes, payload_type: str = IN_TOTO_PAYLOAD_TYPE) -> Bundle:
        return Bundle.create(
            payload=payload,
            payload_type=payload_type,
            signature=self._sig(payload, payload_type),
            key_hint=key_hint(self._key.public_key()),
        )


def load_certificates(path: str) -> list[x509.Certificate]:
    """Every PEM certificate in ``path`` (a chain file may hold several)."""
    from cryptography import x509

    from mlsec.ioutil import read_capped

    data = read_capped(path, _MAX_PEM, what="certificate file", error=SigningError)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise SigningError(f"{path}: not a PEM certificate") from None
    return certs


class CertificateSigner(KeySigner):
    """ECDSA with a private key whose certificate (and chain) travel in the bundle.

    Unlike ``model_signing``, the leaf must be valid *now* (not expired, not yet valid) and must
    match the private key: a bundle that no verifier should accept is never written.
    """

    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey,
        leaf: x509.Certificate,
        chain: Sequence[x509.Certificate] = (),
        *,
        now: dt.datetime | None = None,
    ) -> None:
        super().__init__(key)
        now = now or dt.datetime.now(dt.UTC)
        subject = leaf.subject.rfc4514_string() or "(empty subject)"
        if now < leaf.not_valid_before_utc:
            raise SigningError(
                f"signing certificate {subject} is not valid yet "
                f"(notBefore {leaf.not_valid_before_utc:%Y-%m-%d %H:%M:%SZ})"
            )
        if now > leaf.not_valid_after_utc:
            raise SigningError(
                f"signing certificate {subject} expired on "
                f"{leaf.not_valid_after_utc:%Y-%m-%d %H:%M:%SZ}",
                hint="renew the certificate; verifiers reject signatures from an expired one",
            )
        pub = serialization.PublicFormat.SubjectPublicKeyInfo
        der = serialization.Encoding.DER
        if leaf.public_key().public_bytes(der, pub) != key.public_key().public_bytes(der, pub):
            raise SigningError(f"signing certificate {subject} does not match the private key")
        self._certs = (leaf, *chain)

    def sign(self, payload: bytes, payload_type: str = IN_TOTO_PAYLOAD_TYPE) -> Bundle:
        der = serialization.Encoding.DER
        return Bundle.create(
            payload=payload,
            payload_type=payload_type,
            signature=self._sig(payload, payload_type),
            certificates=tuple(c.public_bytes(der) for c in self._certs),
        )


class SigstoreSigner:
    """Keyless signing through sigstore-python (Fulcio certificate + Rekor entry).

    Needs the public sigstore services and an OIDC token (``identity_token``, or ambient CI
    credentials found by sigstore-python's ``detect_credential``). Not exercised offline.
    """

    def __init__(
        self,
        identity_token: str | None = None,
        *,
        staging: bool = False,
        trust_config: str | None = None,
    ) -> None:
        self._token = identity_token
        self._staging = staging
        self._trust_config = trust_config

    def __repr__(self) -> str:
        return "SigstoreSigner(<token>)" if self._token else "SigstoreSigner()"

    def sign(self, payload: bytes, payload_type: str = IN_TOTO_PAYLOAD_TYPE) -> Bundle:
        try:
            from sigstore.dsse import Statement
            from sigstore.models import ClientTrustConfig
            from sigstore.oidc import IdentityToken, detect_credential
            from sigstore.sign import SigningContext
        except ImportError:
            raise SigningError(
                "keyless signing needs sigstore-python",
                hint="sigstore is a dependency of mlsec: reinstall mlsec",
            ) from None
        if payload_type != IN_TOTO_PAYLOAD_TYPE:
            raise SigningError("sigstore keyless signing only signs in-toto statements")
        try:
            raw = self._token or detect_credential()
        except Exception as exc:
            raise SigningError(f"sigstore: cannot get an OIDC token ({exc})") from None
        if not raw:
            raise SigningError(
                "sigstore: no OIDC identity token",
                hint="pass --identity-token, or run in a CI job with an ambient OIDC credential",
            )
        try:
            if self._trust_config:
                with open(self._trust_config, encoding="utf-8") as f:
                    config = ClientTrustConfig.from_json(f.read(_MAX_TRUST_CONFIG))
            elif self._staging:
                config = ClientTrustConfig.staging()
            else:
                config = ClientTrustConfig.production()
            ctx = SigningContext.from_trust_config(config)
            with ctx.signer(IdentityToken(raw), cache=True) as signer:
                result = signer.sign_dsse(Statement(payload))
            return Bundle.from_json(result.to_json())
        except SigningError:
            raise
        except Exception as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SigningError(
                f"sigstore: keyless signing failed: {msg}",
                hint="keyless signing needs network access to Fulcio, Rekor and the TUF "
                "repository; use --method key offline",
            ) from None
