"""Sigstore bundle v0.3 (JSON) around a DSSE envelope: parse strictly, write exactly.

Policy on unknown fields (the same as ``model_signing``): a key or certificate bundle with a field
this module does not know is *rejected* (``BundleError``). The outer bundle is not covered by the
signature, so an unknown field can only be noise or an attempt to smuggle meaning past a reader;
refusing it keeps every verifier's view of the bundle the same. Keyless (sigstore) bundles are
handed to sigstore-python, which is as strict.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from mlsec.errors import BundleError, VerificationError
from mlsec.jsonsafe import loads

__all__ = ["MEDIA_TYPE", "MEDIA_TYPES", "Bundle", "Material"]

MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
MEDIA_TYPES = frozenset({MEDIA_TYPE, "application/vnd.dev.sigstore.bundle+json;version=0.3"})

_MAX_BUNDLE = 64 * 1024 * 1024


class Material(StrEnum):
    """Which verification material the bundle carries: it decides the verification method."""

    PUBLIC_KEY = "key"
    CERTIFICATE_CHAIN = "certificate"
    SIGSTORE = "sigstore"


def _b64(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise BundleError(f"bundle: {where} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BundleError(f"bundle: {where} is not valid base64") from None


def _enc(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _obj(value: object, where: str, allowed: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise BundleError(f"bundle: {where} is not a JSON object")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise BundleError(
            f"bundle: unknown field {unknown[0]!r} in {where}",
            hint="mlsec (like model_signing) rejects bundles with fields it does not know",
        )
    return value


@dataclass(frozen=True)
class Bundle:
    """A parsed signature bundle. Build with :meth:`from_json` or :meth:`create`."""

    media_type: str
    material: Material
    payload: bytes
    payload_type: str
    signature: bytes
    key_hint: str | None = None
    certificates: tuple[bytes, ...] = ()  # DER, leaf first
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Bundle:
        """Read and parse the bundle at ``path``. :class:`BundleError` naming the file when it is
        missing, unreadable, too large or malformed.
        """
        from mlsec.ioutil import read_capped

        p = Path(path)
        # Capped by bytes read, not stat: /dev/zero or a FIFO as --signature must end.
        data = read_capped(p, _MAX_BUNDLE, what="signature bundle", error=BundleError)
        try:
            return cls.from_json(data)
        except BundleError as exc:
            raise BundleError(f"{p}: {exc.message}", hint=exc.hint) from None

    @classmethod
    def from_json(cls, data: bytes | str) -> Bundle:
        """Parse a bundle; raise :class:`BundleError` (one line) for anything malformed."""
        if len(data) > _MAX_BUNDLE:
            raise BundleError("bundle: larger than 64 MiB, refusing to parse")
        if not data.strip():
            raise BundleError("bundle: empty file")
        try:
            doc = loads(data, "bundle", BundleError)
        except BundleError as exc:
            if "duplicate key" in exc.message:  # two payloads or signatures: read two ways
                raise VerificationError(f"ambiguous signed {exc.message}") from None
            raise
        top = _obj(
            doc,
            "bundle",
            frozenset({"mediaType", "verificationMaterial", "dsseEnvelope", "messageSignature"}),
        )
        media_type = top.get("mediaType")
        if not isinstance(media_type, str) or media_type not in MEDIA_TYPES:
            known = "application/vnd.dev.sigstore.bundle"
            if isinstance(media_type, str) and media_type.startswith(known):
                raise BundleError(f"bundle: unsupported bundle version {media_type!r} (need v0.3)")
            raise BundleError(f"bundle: mediaType is {media_type!r}, not a sigstore bundle v0.3")
        if "messageSignature" in top:
            raise BundleError("bundle: carries a message signature, not a DSSE envelope")
        if "dsseEnvelope" not in top:
            raise BundleError("bundle: no dsseEnvelope")
        if "verificationMaterial" not in top:
            raise BundleError("bundle: no verificationMaterial")
        vm = top["verificationMaterial"]
        if not isinstance(vm, dict):
            raise BundleError("bundle: verificationMaterial is not a JSON object")
        kinds = [k for k in ("publicKey", "x509CertificateChain", "certificate") if k in vm]
        if len(kinds) != 1:
            raise BundleError(
                "bundle: verificationMaterial must hold exactly one of publicKey, "
                "x509CertificateChain, certificate"
            )
        hint: str | None = None
        certs: tuple[bytes, ...] = ()
        if kinds[0] == "publicKey":
            material = Material.PUBLIC_KEY
            _obj(vm, "verificationMaterial", frozenset({"publicKey", "tlogEntries"}))
            # rawBytes / keyDetails: written by model_signing <= 1.0.1; ignored as it does.
            pk = _obj(vm["publicKey"], "publicKey", frozenset({"hint", "rawBytes", "keyDetails"}))
            h = pk.get("hint")
            if h is not None and not isinstance(h, str):
                raise BundleError("bundle: publicKey.hint is not a string")
            hint = h or None
        elif kinds[0] == "x509CertificateChain":
            material = Material.CERTIFICATE_CHAIN
            _obj(vm, "verificationMaterial", frozenset({"x509CertificateChain", "tlogEntries"}))
            chain = _obj(
                vm["x509CertificateChain"], "x509CertificateChain", frozenset({"certificates"})
            )
            raw_certs = chain.get("certificates")
            if not isinstance(raw_certs, list) or not raw_certs:
                raise BundleError("bundle: x509CertificateChain.certificates is empty")
            certs = tuple(
                _b64(
                    _obj(c, "certificate", frozenset({"rawBytes"})).get("rawBytes"),
                    f"certificates[{i}].rawBytes",
                )
                for i, c in enumerate(raw_certs)
            )
        else:
            # Keyless: sigstore-python parses the rest (tlog entries, timestamps) strictly.
            material = Material.SIGSTORE
            cert = vm["certificate"]
            if not isinstance(cert, dict):
                raise BundleError("bundle: certificate is not a JSON object")
            certs = (_b64(cert.get("rawBytes"), "certificate.rawBytes"),)
        tlog = vm.get("tlogEntries", [])
        if not isinstance(tlog, list):
            raise BundleError("bundle: tlogEntries is not a list")

        env = _obj(
            top["dsseEnvelope"], "dsseEnvelope", frozenset({"payload", "payloadType", "signatures"})
        )
        payload = _b64(env.get("payload"), "dsseEnvelope.payload")
        ptype = env.get("payloadType")
        if not isinstance(ptype, str):
            raise BundleError("bundle: dsseEnvelope.payloadType is missing")
        sigs = env.get("signatures")
        if not isinstance(sigs, list) or not sigs:
            raise BundleError("bundle: dsseEnvelope has no signature")
        # Only the first signature is checked, as model_signing does; keyid is informational.
        first = _obj(sigs[0], "signatures[0]", frozenset({"sig", "keyid"}))
        signature = _b64(first.get("sig"), "signatures[0].sig")
        if not signature:
            raise BundleError("bundle: signatures[0].sig is empty")
        return cls(str(media_type), material, payload, ptype, signature, hint, certs, doc)

    @classmethod
    def create(
        cls,
        *,
        payload: bytes,
        payload_type: str,
        signature: bytes,
        key_hint: str | None = None,
        certificates: tuple[bytes, ...] = (),
    ) -> Bundle:
        """A key bundle (``key_hint``) or a certificate-chain bundle (``certificates``)."""
        material = Material.CERTIFICATE_CHAIN if certificates else Material.PUBLIC_KEY
        return cls(MEDIA_TYPE, material, payload, payload_type, signature, key_hint, certificates)

    def to_dict(self) -> dict[str, Any]:
        """The bundle as ``model_signing`` writes it (no extra fields: it rejects them)."""
        if self.material is Material.SIGSTORE:
            return dict(self.raw)
        vm: dict[str, Any]
        if self.material is Material.PUBLIC_KEY:
            vm = {"publicKey": {"hint": self.key_hint} if self.key_hint else {}}
        else:
            vm = {
                "x509CertificateChain": {
                    "certificates": [{"rawBytes": _enc(c)} for c in self.certificates]
                }
            }
        vm["tlogEntries"] = []
        return {
            "mediaType": self.media_type,
            "verificationMaterial": vm,
            "dsseEnvelope": {
                "payload": _enc(self.payload),
                "payloadType": self.payload_type,
                "signatures": [{"sig": _enc(self.signature), "keyid": ""}],
            },
        }

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2) + "\n").encode()
