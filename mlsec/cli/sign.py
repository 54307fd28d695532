"""``mlsec keygen``, ``mlsec sign``, ``mlsec verify``: OpenSSF model-signing signatures.

Parsing and rendering only; the work is in :mod:`mlsec.signing`. cryptography and sigstore are
imported inside the commands so that ``mlsec --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlsec.cli.common import (
    ChainOpt,
    FormatOpt,
    IdentityOpt,
    IgnoreOpt,
    IssuerOpt,
    LazyProgress,
    OutputFormat,
    PublicKeyOpt,
    State,
    emit_json,
    emit_text,
    format_size,
    info,
    plural,
    read_passphrase,
)
from mlsec.cli.text import escape
from mlsec.errors import MlsecError, UsageError, VerificationError
from mlsec.schemas import Schema

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

    from mlsec.signing import Bundle, Passphrase, Signer, Verification, Verifier

SIGN_SCHEMA = Schema.SIGN
KEYGEN_SCHEMA = Schema.KEYGEN


class Method(StrEnum):
    KEY = "key"
    CERTIFICATE = "certificate"
    SIGSTORE = "sigstore"


class CurveOpt(StrEnum):
    P256 = "p256"
    P384 = "p384"


def register(app: typer.Typer) -> None:
    app.command("keygen")(keygen_cmd)
    app.command("sign")(sign_cmd)
    app.command("verify")(verify_cmd)


PassphraseFile = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        metavar="FILE",
        help="Read the passphrase from FILE (first line). Else MLSEC_PASSPHRASE, else a prompt.",
    ),
]


def _passphrase(file: Path | None, *, confirm: bool, what: str) -> Passphrase:
    return read_passphrase(
        file, confirm=confirm, what=what, unencrypted_flag="--no-passphrase" if confirm else None
    )


def keygen_cmd(
    output: Annotated[
        Path,
        typer.Option("--output", "-o", metavar="PREFIX", help="Writes PREFIX.key and PREFIX.pub."),
    ],
    curve: Annotated[CurveOpt, typer.Option("--curve", help="ECDSA curve.")] = CurveOpt.P256,
    no_passphrase: Annotated[
        bool, typer.Option("--no-passphrase", help="Write the private key unencrypted.")
    ] = False,
    passphrase_file: PassphraseFile = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing key files.")] = False,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> int:
    """Create an ECDSA key pair: PREFIX.key (encrypted PKCS#8, mode 0600) and PREFIX.pub."""
    from mlsec.signing import Curve, generate_keypair
    from mlsec.signing.keys import keypair_paths

    keypair_paths(output, overwrite=force)  # refuse a bad PREFIX before asking for a passphrase
    pw = None if no_passphrase else _passphrase(passphrase_file, confirm=True, what=f"{output}.key")
    key_path, pub_path = generate_keypair(
        output, curve=Curve(curve.value), passphrase=pw, overwrite=force
    )
    if fmt is OutputFormat.JSON:
        emit_json(
            {
                "schema": KEYGEN_SCHEMA,
                "private_key": str(key_path),
                "public_key": str(pub_path),
                "curve": curve.value,
                "encrypted": pw is not None,
            }
        )
    else:
        state = "encrypted" if pw is not None else "UNENCRYPTED"
        print(escape(f"wrote {key_path} ({state}, mode 0600) and {pub_path}"))
    return 0


def _load_key(path: Path, passphrase_file: Path | None) -> EllipticCurvePrivateKey:
    from mlsec.signing import load_private_key
    from mlsec.signing.keys import is_encrypted

    pw = _passphrase(passphrase_file, confirm=False, what=str(path)) if is_encrypted(path) else None
    return load_private_key(path, pw)


def _signer(
    method: Method,
    key: Path | None,
    passphrase_file: Path | None,
    signing_certificate: Path | None,
    certificate_chain: list[Path],
    identity_token: str | None,
    trust_config: Path | None,
) -> Signer:
    from mlsec.signing import CertificateSigner, KeySigner, SigstoreSigner, load_certificates

    match method:
        case Method.KEY:
            if key is None:
                raise UsageError("--key is required for --method key")
            return KeySigner(_load_key(key, passphrase_file))
        case Method.CERTIFICATE:
            if key is None or signing_certificate is None:
                raise UsageError("--method certificate needs --key and --signing-certificate")
            leaf, *rest = load_certificates(str(signing_certificate))
            chain = [*rest]
            for c in certificate_chain:
                chain.extend(load_certificates(str(c)))
            return CertificateSigner(_load_key(key, passphrase_file), leaf, chain)
        case Method.SIGSTORE:
            token = identity_token or os.environ.get("SIGSTORE_ID_TOKEN")
            return SigstoreSigner(token, trust_config=str(trust_config) if trust_config else None)


def sign_cmd(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Model file or directory.")],
    key: Annotated[
        Path | None, typer.Option("--key", "-k", metavar="KEY", help="PEM EC private key.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="SIG",
            help="Signature file (default: PATH.sig beside the model; BOM.sig with --sbom).",
        ),
    ] = None,
    method: Annotated[Method, typer.Option("--method", help="Signing method.")] = (Method.KEY),
    signing_certificate: Annotated[
        Path | None,
        typer.Option("--signing-certificate", metavar="PEM", help="Leaf certificate of --key."),
    ] = None,
    certificate_chain: Annotated[
        list[Path] | None,
        typer.Option(
            "--certificate-chain", metavar="PEM", help="Intermediate/root certs (repeatable)."
        ),
    ] = None,
    identity_token: Annotated[
        str | None,
        typer.Option("--identity-token", metavar="JWT", help="OIDC token for --method sigstore."),
    ] = None,
    trust_config: Annotated[
        Path | None,
        typer.Option("--trust-config", metavar="JSON", help="Sigstore ClientTrustConfig."),
    ] = None,
    ignore: IgnoreOpt = None,
    no_ignore_git: Annotated[
        bool,
        typer.Option("--no-ignore-git", help="Sign .git, .gitattributes, .github, .gitignore."),
    ] = False,
    allow_symlinks: Annotated[
        bool, typer.Option("--allow-symlinks", help="Follow symlinks inside the model.")
    ] = False,
    sbom: Annotated[
        Path | None,
        typer.Option("--sbom", metavar="BOM", help="Sign this CycloneDX SBOM about the model."),
    ] = None,
    passphrase_file: PassphraseFile = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> int:
    """Sign a model (OpenSSF model-signing v1.0 bundle), or an SBOM about it (--sbom)."""
    from mlsec.signing import default_signature_path, sign_model

    signer = _signer(
        method,
        key,
        passphrase_file,
        signing_certificate,
        certificate_chain or [],
        identity_token,
        trust_config,
    )
    if sbom is not None:
        from mlsec.signing.sbom import sign_sbom

        out = output or sbom.with_name(sbom.name + ".sig")
        bundle = sign_sbom(
            sbom, path, signer, ignore=ignore or (), signature_path=out, progress=LazyProgress()
        )
        _write(out, bundle.to_json())
        if fmt is OutputFormat.JSON:
            emit_json(
                {
                    "schema": SIGN_SCHEMA,
                    "kind": "sbom",
                    "sbom": str(sbom),
                    "model": str(path),
                    "signature": str(out),
                    "method": method.value,
                }
            )
        else:
            print(escape(f"signed SBOM {sbom} for {path} -> {out}"))
        return 0

    out = output or default_signature_path(path)
    signed = sign_model(
        path,
        signer,
        ignore=ignore or (),
        ignore_git=not no_ignore_git,
        allow_symlinks=allow_symlinks,
        signature_path=out,
        progress=LazyProgress(),
    )
    _write(out, signed.bundle.to_json())
    if fmt is OutputFormat.JSON:
        emit_json(
            {
                "schema": SIGN_SCHEMA,
                "kind": "model",
                "model": str(path),
                "signature": str(out),
                "method": method.value,
                "root_digest": f"sha256:{signed.manifest.root_digest}",
                "files": [r.to_dict() for r in signed.manifest.resources],
                "ignore_paths": list(signed.manifest.serialization.ignore_paths or ()),
            }
        )
    else:
        print(
            escape(
                f"signed {path}: {plural(len(signed.manifest.resources), 'file')}, "
                f"root sha256:{signed.manifest.root_digest} -> {out}"
            )
        )
    return 0


def _write(out: Path, data: bytes) -> None:
    from mlsec.ioutil import atomic_write_bytes

    try:
        atomic_write_bytes(out, data)
    except OSError as exc:
        raise MlsecError(f"{out}: cannot write: {exc.strerror or exc}") from None


def _verifier(
    key: Path | None,
    certificate_chain: list[Path],
    identity: str | None,
    issuer: str | None,
    trust_config: Path | None,
    online: bool,
    staging: bool = False,
) -> Verifier:
    from mlsec.signing.trust import TrustMaterial

    trust = TrustMaterial(
        key, tuple(certificate_chain), identity, issuer, trust_config, online, staging
    )
    if trust.identity and not State.debug:
        import logging

        # sigstore-python warns on every offline trust-root load; offline is our default.
        logging.getLogger("sigstore").setLevel(logging.ERROR)
    return trust.verifier()


def _verify_reference(
    reference: Any, verifier: Verifier, fmt: OutputFormat, output: Path | None
) -> int:
    from mlsec.cli.registry import _open
    from mlsec.registry.remote import verify_reference

    _, store = _open(str(reference), False, None, False)
    try:
        try:
            remote = verify_reference(reference, verifier, store=store)
        except VerificationError as exc:
            if fmt is OutputFormat.JSON:
                emit_json(
                    {"schema": Schema.VERIFY, "ok": False, "model": str(reference),
                     "method": verifier.method, "error": exc.message, "layers_downloaded": 0},
                    output,
                )  # fmt: skip
            else:
                print(escape(exc.message), file=sys.stderr)
            return 1
    finally:
        store.close()
    if fmt is OutputFormat.JSON:
        emit_json(remote.to_dict(), output)
    else:
        v = remote.verification
        emit_text(
            escape(
                f"verified {reference}: {plural(v.files, 'file')}, signed by {v.signer} "
                f"(from the manifest {remote.digest[:19]}…: no layer downloaded, "
                f"{format_size(remote.bytes_read)} read)"
            )
            + "\n",
            output,
        )
    return 0


def _read_bundle(sig: Path) -> Bundle:
    from mlsec.errors import BundleError
    from mlsec.signing import Bundle

    try:
        return Bundle.from_file(sig)
    except OSError as exc:
        raise BundleError(f"{sig}: cannot read: {exc.strerror or exc}") from None


def _render(result: Verification, fmt: OutputFormat, output: Path | None) -> None:
    if fmt is OutputFormat.JSON:
        emit_json(result.to_dict(), output)
        return
    if result.ok:
        files = plural(result.files, "file")
        print(escape(f"verified {result.model}: {files}, signed by {result.signer}"))
        if result.unsigned_files:
            tolerated = ", ".join(result.unsigned_files)
            info(f"files not covered by the signature (tolerated): {tolerated}")
        for note in result.notes:
            info(f"note: {note}")
        return
    print(escape(f"FAILED {result.model} ({result.signer}):"))
    for d in result.differences:
        print(f"  {escape(d.line())}")


def verify_cmd(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Model file or directory.")],
    signature: Annotated[
        Path | None,
        typer.Option("--signature", "-s", metavar="SIG", help="Bundle (default: PATH.sig)."),
    ] = None,
    key: PublicKeyOpt = None,
    certificate_chain: ChainOpt = None,
    identity: IdentityOpt = None,
    issuer: IssuerOpt = None,
    trust_config: Annotated[
        Path | None,
        typer.Option("--trust-config", metavar="JSON", help="Sigstore ClientTrustConfig."),
    ] = None,
    online: Annotated[
        bool,
        typer.Option("--online", help="Keyless: refresh the sigstore trust root over the network."),
    ] = False,
    staging: Annotated[
        bool, typer.Option("--staging", help="Keyless: sigstore's staging trust root.")
    ] = False,
    ignore: IgnoreOpt = None,
    ignore_unsigned_files: Annotated[
        bool,
        typer.Option("--ignore-unsigned-files", help="Tolerate files the signature does not list."),
    ] = False,
    sbom: Annotated[
        Path | None,
        typer.Option("--sbom", metavar="BOM", help="Verify a signed SBOM about the model."),
    ] = None,
    attestation: Annotated[
        Path | None,
        typer.Option(
            "--attestation", metavar="ATT", help="Verify this attestation (mlsec attest) instead."
        ),
    ] = None,
    fmt: FormatOpt = OutputFormat.TABLE,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", metavar="FILE", help="Write the result here.")
    ] = None,
) -> int:
    """Verify a model (or, with --sbom, an SBOM attestation) against its signature.

    The signature's recorded ignore list and symlink policy are applied; exit 1 names every file
    that differs.
    """
    from mlsec.cli.common import local_target
    from mlsec.signing import default_signature_path, verify_model

    if attestation is not None:
        if signature is not None or sbom is not None or ignore_unsigned_files:
            raise UsageError(
                "--attestation excludes --signature, --sbom and --ignore-unsigned-files"
            )
        from mlsec.cli.attest import verify_attestation_cmd

        verifier = _verifier(key, certificate_chain or [], identity, issuer, trust_config, online)
        return verify_attestation_cmd(
            local_target(path), attestation, verifier, ignore or [], fmt, output
        )
    if signature is None and sbom is None and str(path).startswith("hf:/"):
        raise UsageError("an hf:// model has no signature beside it: give --signature FILE")
    if signature is None and sbom is None and not os.path.lexists(path):
        from mlsec.policy.api import resolve_target

        target = resolve_target(str(path))
        if not isinstance(target, Path):  # a registry or layout reference: no layer downloaded
            return _verify_reference(
                target,
                _verifier(key, certificate_chain or [], identity, issuer, trust_config, online),
                fmt,
                output,
            )
    sig = signature or (
        sbom.with_name(sbom.name + ".sig") if sbom is not None else default_signature_path(path)
    )
    verifier = _verifier(key, certificate_chain or [], identity, issuer, trust_config, online)
    bundle = _read_bundle(sig)
    path = local_target(path)  # downloaded only once the signature and trust are usable
    try:
        if sbom is not None:
            from mlsec.signing.sbom import verify_sbom

            result = verify_sbom(
                sbom,
                path,
                bundle,
                verifier,
                ignore=ignore or (),
                signature_path=sig,
                progress=LazyProgress(),
            )
        else:
            result = verify_model(
                path,
                bundle,
                verifier,
                ignore=ignore or (),
                ignore_unsigned=ignore_unsigned_files,
                signature_path=sig,
                progress=LazyProgress(),
            )
    except VerificationError as exc:
        from mlsec.signing import Verification

        if not isinstance(exc.result, Verification):
            if fmt is OutputFormat.JSON:
                emit_json(
                    {
                        "schema": Schema.VERIFY,
                        "ok": False,
                        "model": str(path),
                        "method": verifier.method,
                        "error": exc.message,
                    },
                    output,
                )
            raise
        _render(exc.result, fmt, output)
        raise
    _render(result, fmt, output)
    return 0
