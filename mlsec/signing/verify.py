"""Verification: check the bundle's signature, then compare what it lists with the model on disk.

Names in the manifest are never opened: the model is walked with the policy recorded in the
signature (``ignore_paths``, ``allow_symlinks``) and the two file sets are compared.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from mlsec.artifact import Artifact, open_artifact, sort_key
from mlsec.errors import ArtifactError, BundleError, VerificationError
from mlsec.progress import Progress
from mlsec.signing.bundle import Bundle, Material
from mlsec.signing.dsse import IN_TOTO_PAYLOAD_TYPE, pae, pae_compat
from mlsec.signing.keys import hash_for, key_hint
from mlsec.signing.manifest import Manifest, Resource, sharded

if TYPE_CHECKING:  # x509 costs ~40 ms to import: only the certificate method pays for it
    from cryptography import x509

__all__ = [
    "SCHEMA",
    "CertificateVerifier",
    "Difference",
    "KeyVerifier",
    "SigstoreVerifier",
    "Verification",
    "Verifier",
    "verify_model",
]

SCHEMA = "mlsec/verify/v1"


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
                "keyless verification needs sigstore-python", hint="pip install 'mlsec[sigstore]'"
            ) from None
        try:
            if self._trust_config:
                with open(self._trust_config) as f:
                    config = ClientTrustConfig.from_json(f.read())
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


@dataclass(frozen=True, slots=True)
class Difference:
    """One way the model differs from what was signed."""

    path: str
    status: str  # "changed" | "missing" | "extra" | "invalid-name"
    expected: str | None = None
    actual: str | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "status": self.status}
        if self.expected is not None:
            d["expected"] = self.expected
        if self.actual is not None:
            d["actual"] = self.actual
        if self.reason:
            d["reason"] = self.reason
        return d

    def line(self) -> str:
        match self.status:
            case "changed" if self.expected is None:
                return f"{self.path}: {self.reason or 'changed'}"
            case "changed":
                return f"{self.path}: digest differs (signed {self.expected}, now {self.actual})"
            case "missing":
                extra = f"; {self.reason}" if self.reason else ""
                return f"{self.path}: signed file is missing{extra}"
            case "extra":
                why = f" ({self.reason})" if self.reason else ""
                return f"{self.path}: file is not covered by the signature{why}"
            case _:
                return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class Verification:
    """The outcome of verifying a model (``ok`` is True only when nothing differs)."""

    model: str
    method: str
    signer: str
    root_digest: str
    files: int
    differences: tuple[Difference, ...] = ()
    ignored_by_signature: tuple[str, ...] = ()
    caller_ignores: tuple[str, ...] = ()
    allow_symlinks: bool = False
    unsigned_files: tuple[str, ...] = ()
    compat: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "ok": self.ok,
            "model": self.model,
            "method": self.method,
            "signer": self.signer,
            "root_digest": f"sha256:{self.root_digest}" if self.root_digest else None,
            "files": self.files,
            "differences": [d.to_dict() for d in self.differences],
            "policy": {
                "signed_ignore_paths": list(self.ignored_by_signature),
                "caller_ignore_paths": list(self.caller_ignores),
                "allow_symlinks": self.allow_symlinks,
            },
            "unsigned_files_tolerated": list(self.unsigned_files),
            "notes": list(self.notes),
        }

    def summary(self) -> str:
        if self.ok:
            return f"{self.model}: OK, {self.files} files verified ({self.signer})"
        return f"{self.model}: " + "; ".join(d.line() for d in self.differences)


def _bad_name(name: str) -> str | None:
    if not name or name.startswith("/"):
        return "absolute or empty path"
    if "\x00" in name:
        return "contains a NUL byte"
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "not a normalised path inside the model ('..', '.', or empty component)"
    return None


def _hash_range(path: Path, algo: str, start: int, end: int) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        f.seek(start)
        left = end - start
        while left > 0:
            chunk = f.read(min(left, 4 * 1024 * 1024))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def _local_resources(
    art: Artifact, manifest: Manifest, progress: Progress | None
) -> tuple[Artifact, dict[str, Resource]]:
    """The resources the model on disk has, computed the way the manifest was."""
    ser = manifest.serialization
    if ser.method == "files" and ser.hash_type == "sha256":
        art = art.with_digests(progress=progress)
        return art, {f.path: Resource(f.path, "sha256", f.sha256 or "") for f in art.files}
    if ser.hash_type not in ("sha256", "blake2b"):
        raise BundleError(f"statement: hash type {ser.hash_type!r} is not supported by mlsec")
    out: dict[str, Resource] = {}
    if ser.method == "files":
        for f in art.files:
            out[f.path] = Resource(
                f.path, ser.hash_type, _hash_range(f.source, ser.hash_type, 0, f.size)
            )
        return art, out
    k = ser.shard_size or 1
    algo = f"{ser.hash_type}-sharded-{k}"
    for f in art.files:
        for start in range(0, f.size, k):  # a 0-byte file has no shard, as in model_signing
            end = min(start + k, f.size)
            name = f"{f.path}:{start}:{end}"
            out[name] = Resource(name, algo, _hash_range(f.source, ser.hash_type, start, end))
    return art, out


def _resource_file(name: str, sharded_mode: bool) -> str:
    if sharded_mode:
        parts = name.rsplit(":", 2)
        return parts[0] if len(parts) == 3 else name
    return name


def verify_model(
    path: str | os.PathLike[str],
    bundle: Bundle,
    verifier: Verifier,
    *,
    ignore: Iterable[str] = (),
    ignore_unsigned: bool = False,
    signature_path: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> Verification:
    """Verify ``bundle`` over the model at ``path``; return the result or raise.

    Raises :class:`VerificationError` (``.result`` holds the :class:`Verification`) when the
    signature is bad or the model differs, :class:`BundleError` when the bundle is malformed.
    """
    payload, signer = verifier.verify_signature(bundle)
    if bundle.payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise VerificationError(f"payload type is {bundle.payload_type!r}, not in-toto")
    manifest = Manifest.from_statement(payload)
    ser = manifest.serialization
    root = Path(os.path.abspath(path))
    caller = tuple(ignore)
    # Signed settings win: the recorded ignore list and symlink policy, not the caller's.
    recorded = ser.ignore_paths
    # Recorded paths are root-relative; anchoring them at the root keeps "../x" from mattering.
    excluded = [str(root / p) for p in recorded or () if not p.startswith("/")]
    if signature_path is not None:
        excluded.append(os.path.abspath(signature_path))
    if not os.path.lexists(root):
        raise ArtifactError(f"{path}: no such file or directory")
    try:
        art = open_artifact(
            root,
            ignore=(*excluded, *caller),
            # Bundles that record their ignore list carry the git defaults in it (or chose not to).
            ignore_git=recorded is None,
            allow_symlinks=ser.allow_symlinks,
        )
    except ArtifactError as exc:
        raise VerificationError(f"cannot walk the model: {exc.message}", hint=exc.hint) from None

    art, local = _local_resources(art, manifest, progress)
    sharded_mode = ser.method == "shards" or any(sharded(r.algorithm) for r in manifest.resources)
    if not art.is_dir:
        # A single-file model: model_signing names it ".", the OMS spec the basename.
        only = art.files[0].path
        local = {
            (k.replace(only, ".", 1) if k.startswith(only) else k): Resource(
                r.name.replace(only, ".", 1), r.algorithm, r.digest
            )
            for k, r in local.items()
        }
    expected: dict[str, Resource] = {}
    diffs: list[Difference] = []
    for r in manifest.resources:
        fname = _resource_file(r.name, sharded_mode)
        bad = None if (not art.is_dir and fname in (".", art.files[0].path)) else _bad_name(fname)
        if bad:
            diffs.append(Difference(r.name, "invalid-name", reason=f"manifest entry: {bad}"))
            continue
        name = r.name
        if not art.is_dir and fname == art.files[0].path:
            name = "." + r.name[len(fname) :]
        expected[name] = r
    symlinked = {i.path for i in art.ignored if i.reason.startswith("symlink")}
    changed_files: dict[str, Difference] = {}
    for name, r in expected.items():
        have = local.get(name)
        fname = _resource_file(name, sharded_mode)
        if have is None:
            if sharded_mode and any(_resource_file(k, True) == fname for k in local):
                changed_files.setdefault(
                    fname, Difference(fname, "changed", reason="shards differ")
                )
                continue
            reason = (
                "now a symlink, and the signature does not allow following symlinks"
                if fname in symlinked
                else ""
            )
            diffs.append(Difference(fname, "missing", expected=r.digest, reason=reason))
        elif (have.algorithm, have.digest) != (r.algorithm, r.digest.lower()):
            if sharded_mode:
                changed_files.setdefault(
                    fname, Difference(fname, "changed", reason="shards differ")
                )
            elif have.algorithm != r.algorithm:
                diffs.append(
                    Difference(
                        name,
                        "changed",
                        reason=f"algorithm {r.algorithm!r} signed, {have.algorithm!r} computed",
                    )
                )
            else:
                diffs.append(Difference(name, "changed", expected=r.digest, actual=have.digest))
    expected_files = {_resource_file(k, sharded_mode) for k in expected}
    extra_files: set[str] = set()
    for k in local:
        if k in expected:
            continue
        fname = _resource_file(k, sharded_mode)
        if fname in expected_files:
            # A shard the signature does not list, of a signed file: the file grew.
            changed_files.setdefault(fname, Difference(fname, "changed", reason="shards differ"))
        else:
            extra_files.add(fname)
    diffs.extend(changed_files.values())
    extra = sorted(extra_files, key=sort_key)
    # A symlink the signed policy does not follow is still a file a loader would open.
    missing = {d.path for d in diffs}
    links = sorted(symlinked - missing - set(expected), key=sort_key)
    unsigned: tuple[str, ...] = ()
    if ignore_unsigned:
        unsigned = (*extra, *links)
    else:
        diffs.extend(Difference(e, "extra") for e in extra)
        diffs.extend(
            Difference(p, "extra", reason="symlink; the signature does not allow symlinks")
            for p in links
        )
    diffs.sort(key=lambda d: sort_key(d.path))
    notes = []
    if manifest.compat:
        notes.append("legacy model_signing v0.2 statement: no root digest was signed")
    if caller:
        notes.append("caller --ignore paths applied on top of the signed ignore list")
    result = Verification(
        model=str(path),
        method=verifier.method,
        signer=signer,
        root_digest="" if manifest.compat else manifest.root_digest,
        files=len(expected_files),
        differences=tuple(diffs),
        ignored_by_signature=tuple(recorded or ()),
        caller_ignores=caller,
        allow_symlinks=ser.allow_symlinks,
        unsigned_files=unsigned,
        compat=manifest.compat,
        notes=tuple(notes),
    )
    if not result.ok:
        raise VerificationError(result.summary(), result=result)
    return result
