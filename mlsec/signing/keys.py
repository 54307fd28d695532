"""EC keys: generate, write (encrypted PKCS#8, mode 0600), load (PKCS#8 or SEC1), identify.

Only the curves the OpenSSF format allows are accepted: P-256, P-384, P-521, each signed with
the SHA-2 of matching strength.
"""

from __future__ import annotations

import hashlib
import os
from enum import StrEnum
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mlsec.errors import KeyFileError, MlsecError
from mlsec.ioutil import read_capped, write_output
from mlsec.secrets import Passphrase

__all__ = [
    "Curve",
    "Passphrase",
    "generate_keypair",
    "hash_for",
    "key_hint",
    "keypair_paths",
    "load_private_key",
    "load_public_key",
    "public_pem",
]


class Curve(StrEnum):
    P256 = "p256"
    P384 = "p384"


_CURVES: dict[str, hashes.HashAlgorithm] = {
    "secp256r1": hashes.SHA256(),
    "secp384r1": hashes.SHA384(),
    "secp521r1": hashes.SHA512(),
}


def hash_for(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> hashes.HashAlgorithm:
    """The hash the format pairs with the key's curve (P-256→SHA-256, P-384→SHA-384, …)."""
    algo = _CURVES.get(key.curve.name)
    if algo is None:
        raise KeyFileError(
            f"unsupported curve {key.curve.name}: use P-256, P-384 or P-521",
        )
    return algo


def _check_ec(key: object, where: str) -> None:
    if not isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        kind = type(key).__name__.lstrip("_").replace("PrivateKey", "").replace("PublicKey", "")
        raise KeyFileError(
            f"{where}: {kind or 'this'} key is not supported: the OpenSSF model-signing format "
            "uses ECDSA keys (P-256, P-384, P-521)",
            hint="create one with `mlsec keygen`",
        )
    hash_for(key)


def public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM, exactly as ``model_signing`` hashes it for the key hint."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_hint(key: ec.EllipticCurvePublicKey) -> str:
    """The bundle's ``publicKey.hint``: hex SHA-256 of the public key's PEM text."""
    return hashlib.sha256(public_pem(key)).hexdigest()


def keypair_paths(prefix: str | os.PathLike[str], *, overwrite: bool = False) -> tuple[Path, Path]:
    """``(PREFIX.key, PREFIX.pub)`` for ``prefix``, or :class:`KeyFileError` if they cannot be
    written: ``prefix`` is a directory (``-o keys/``) or an existing non-regular file (``-o
    /dev/full`` must not create ``/dev/full.key``), or a file exists and not ``overwrite``."""
    base = Path(prefix)
    if str(prefix).endswith(("/", os.sep)) or base.is_dir():
        raise KeyFileError(
            f"{prefix}: is a directory; --output is a prefix for PREFIX.key and PREFIX.pub",
            hint=f"e.g. --output {base / 'signer'}",
        )
    if base.suffix in (".key", ".pub"):  # "--output signer.key" means the prefix "signer"
        base = base.with_suffix("")
    elif os.path.lexists(base) and not base.is_file():
        # keygen -o /dev/full must not create /dev/full.key
        raise KeyFileError(f"{base}: exists and is not a regular file; give a new file prefix")
    key_path, pub_path = Path(f"{base}.key"), Path(f"{base}.pub")
    for p in (key_path, pub_path):
        if os.path.lexists(p) and not p.is_file():
            raise KeyFileError(f"{p}: exists and is not a regular file")
        if not overwrite and os.path.lexists(p):
            raise KeyFileError(f"{p}: already exists", hint="remove it or pick another prefix")
    return key_path, pub_path


def generate_keypair(
    prefix: str | os.PathLike[str],
    *,
    curve: Curve = Curve.P256,
    passphrase: Passphrase | None,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write ``PREFIX.key`` (PKCS#8, encrypted unless ``passphrase`` is None; mode 0600) and
    ``PREFIX.pub`` (SubjectPublicKeyInfo PEM). Returns both paths."""
    key_path, pub_path = keypair_paths(prefix, overwrite=overwrite)
    base = key_path.with_suffix("")
    curve_obj: ec.EllipticCurve = ec.SECP256R1() if curve is Curve.P256 else ec.SECP384R1()
    key = ec.generate_private_key(curve_obj)
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.value)
        if passphrase is not None
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    try:
        write_output(key_path, pem, mode=0o600, overwrite=overwrite)
        try:
            write_output(pub_path, public_pem(key.public_key()), mode=0o644, overwrite=overwrite)
        except BaseException:
            key_path.unlink(missing_ok=True)  # half a key pair is no key pair
            raise
    except OSError as exc:
        raise KeyFileError(f"{base}: cannot write key: {exc.strerror or exc}") from None
    except MlsecError as exc:
        raise KeyFileError(exc.message, hint=exc.hint) from None
    return key_path, pub_path


MAX_KEY_FILE_BYTES = 1 << 20  # a PEM key or certificate (chain) is a few KiB


def _read(path: str | os.PathLike[str]) -> bytes:
    return read_capped(path, MAX_KEY_FILE_BYTES, what="key file", error=KeyFileError)


def is_encrypted(path: str | os.PathLike[str]) -> bool:
    """Whether a PEM private key file needs a passphrase."""
    data = _read(path)
    return b"ENCRYPTED" in data


def load_private_key(
    path: str | os.PathLike[str], passphrase: Passphrase | None = None
) -> ec.EllipticCurvePrivateKey:
    """Load a PEM EC private key (PKCS#8, encrypted PKCS#8, or SEC1)."""
    data = _read(path)
    try:
        key = serialization.load_pem_private_key(
            data, password=passphrase.value if passphrase else None
        )
    except TypeError:
        if passphrase is None:
            raise KeyFileError(
                f"{path}: the key is encrypted and no passphrase was given",
                hint="set MLSEC_PASSPHRASE or pass --passphrase-file",
            ) from None
        # A passphrase given for an unencrypted key: load it without one.
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError:
        if passphrase is not None and b"ENCRYPTED" in data:
            raise KeyFileError(f"{path}: wrong passphrase") from None
        raise KeyFileError(f"{path}: not a PEM private key") from None
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm and friends
        raise KeyFileError(f"{path}: cannot load private key ({exc})") from None
    _check_ec(key, str(path))
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def load_public_key(path: str | os.PathLike[str]) -> ec.EllipticCurvePublicKey:
    """Load a PEM SubjectPublicKeyInfo EC public key (a certificate is accepted too)."""
    data = _read(path)
    try:
        if b"BEGIN CERTIFICATE" in data:
            from cryptography import x509

            key: object = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except Exception:
        raise KeyFileError(f"{path}: not a PEM public key") from None
    _check_ec(key, str(path))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key
