"""Verify a model in a registry without downloading it: the signature attached as a referrer is
checked against the manifest's layer digests (one layer per file, titled with its path), so only
manifests and the signature bundle are read, never a weight."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlsec.errors import BundleError, RegistryError, VerificationError
from mlsec.registry._base import fetch_manifest, store_for
from mlsec.registry.oci import SIGNATURE_ARTIFACT_TYPE, Manifest
from mlsec.registry.reference import Reference, parse_reference
from mlsec.registry.referrers import MAX_REFERRER_SIZE

if TYPE_CHECKING:
    from mlsec.registry.store import Store
    from mlsec.signing.verify import Verification, Verifier

__all__ = ["RemoteVerification", "verify_reference"]


@dataclass(frozen=True, slots=True)
class RemoteVerification:
    """A registry model verified from its manifest: the result, the manifest digest that was
    judged, and how many bytes were read (manifests and the bundle only)."""

    verification: Verification
    digest: str
    bytes_read: int

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.verification.to_dict(),
            "manifest_digest": self.digest,
            "bytes_read": self.bytes_read,
            "layers_downloaded": 0,
        }


def _read_blob(st: Store, desc: Any, what: str) -> bytes:
    if desc.size > MAX_REFERRER_SIZE:
        raise RegistryError(f"{what}: {desc.size} bytes, larger than a signature bundle can be")
    with st.open_blob(desc) as f:
        data = f.read(desc.size + 1)
    if len(data) != desc.size or f"sha256:{hashlib.sha256(data).hexdigest()}" != desc.digest:
        raise RegistryError(f"{what}: blob does not match its digest {desc.digest}")
    return data


def verify_reference(
    ref: str | Reference, verifier: Verifier, *, store: Store | None = None
) -> RemoteVerification:
    """Verify the model at ``ref`` with its attached model signature(s), from the manifest alone.

    Every signed file must be a layer with the same path (title) and SHA-256, and every layer a
    signed file; a model sealed with age has no per-file layers and cannot be checked this way
    (:class:`RegistryError`: pull it and verify locally). :class:`VerificationError` when no
    attached signature verifies with ``verifier`` over these layers (exit 1)."""
    from mlsec.signing.bundle import Bundle
    from mlsec.signing.dsse import IN_TOTO_PAYLOAD_TYPE
    from mlsec.signing.manifest import Manifest as Statement
    from mlsec.signing.verify import Difference, Verification

    reference = parse_reference(ref) if isinstance(ref, str) else ref
    read = 0
    with store_for(reference, store) as st:
        data, _, digest = fetch_manifest(st, reference.reference, str(reference))
        read += len(data)
        model = Manifest.parse(data, str(reference))
        layers: dict[str, str] = {}
        for layer in model.layers:
            title = layer.title
            if title is None or title in layers:
                raise RegistryError(
                    f"{reference}: not a model with one titled layer per file (sealed or foreign);"
                    " pull it and verify locally"
                )
            layers[title] = layer.digest.removeprefix("sha256:")
        if model.annotations.get("dev.mlsec.encryption"):
            raise RegistryError(f"{reference}: sealed with age; pull it and verify locally")
        from mlsec.attest import PREDICATE_ANNOTATION
        from mlsec.registry.referrers import _list_referrers

        reasons: list[str] = []
        for r in _list_referrers(st, digest):
            if r.artifact_type != SIGNATURE_ARTIFACT_TYPE or PREDICATE_ANNOTATION in r.annotations:
                continue
            mdata, _, _ = fetch_manifest(st, r.digest, f"referrer {r.digest}")
            read += len(mdata)
            m = Manifest.parse(mdata, f"referrer {r.digest}")
            if m.subject is None or m.subject.digest != digest or len(m.layers) != 1:
                continue
            blob = _read_blob(st, m.layers[0], f"referrer {r.digest}")
            read += len(blob)
            try:
                bundle = Bundle.from_json(blob)
                payload, signer = verifier.verify_signature(bundle)
                if bundle.payload_type != IN_TOTO_PAYLOAD_TYPE:
                    raise VerificationError("payload type is not in-toto")
                statement = Statement.from_statement(payload)
            except (BundleError, VerificationError) as exc:
                reasons.append(f"{r.digest[:19]}: {exc.message}")
                continue
            if statement.serialization.method != "files":
                reasons.append(f"{r.digest[:19]}: signed per shard; verify the pulled model")
                continue
            signed = {res.name: res.digest for res in statement.resources}
            diffs = [
                Difference(name, "changed", expected=d, actual=layers[name])
                for name, d in signed.items()
                if name in layers and layers[name] != d
            ]
            diffs += [Difference(n, "missing") for n in signed if n not in layers]
            diffs += [Difference(n, "extra") for n in layers if n not in signed]
            result = Verification(
                model=str(reference),
                method=verifier.method,
                signer=signer,
                root_digest=statement.root_digest,
                files=len(signed),
                differences=tuple(diffs),
            )
            if result.ok:
                return RemoteVerification(result, digest, read)
            reasons.append(f"{r.digest[:19]}: {len(diffs)} file(s) differ from the layers")
        why = "; ".join(reasons) if reasons else "no model signature is attached"
        raise VerificationError(f"{reference}: not verified: {why}")
