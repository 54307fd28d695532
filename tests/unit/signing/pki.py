"""Test PKI and keys generated at test time with cryptography (nothing binary in git)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The golden bundles written by model_signing 1.1.1, in the read-only shared/ folder that lies
# beside the checkout (for developers and in CI). Absent, the tests that need them fail.
_REPO = Path(__file__).resolve().parents[3]
EXAMPLE = Path(
    os.environ.get(
        "MLSEC_SIGNING_EXAMPLE", _REPO.parent / "shared" / "specs" / "model-signing-example"
    )
)


def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def write_pub(path: Path, key: ec.EllipticCurvePublicKey) -> Path:
    path.write_bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None = None,
    *,
    ca: bool = False,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    code_signing: bool = True,
    path_length: int | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(days=1))
        .not_valid_after(not_after or now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    )
    if ca:
        b = b.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
    elif code_signing:
        b = b.add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), True
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
    else:
        b = b.add_extension(
            x509.KeyUsage(False, False, True, False, False, False, False, False, False), True
        )
    return b.sign(issuer_key, hashes.SHA256())


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Pki:
    ca_cert: Path
    int_cert: Path
    leaf_cert: Path
    leaf_key: Path
    other_ca_cert: Path


def make_pki(d: Path, **leaf_kw: object) -> Pki:
    """Root CA → intermediate → leaf (digitalSignature + codeSigning), plus an unrelated root."""
    d.mkdir(parents=True, exist_ok=True)
    root_k = ec.generate_private_key(ec.SECP256R1())
    int_k = ec.generate_private_key(ec.SECP256R1())
    leaf_k = ec.generate_private_key(ec.SECP256R1())
    other_k = ec.generate_private_key(ec.SECP256R1())
    root = make_cert("test root", root_k, ca=True)
    inter = make_cert("test intermediate", int_k, ("test root", root_k), ca=True)
    leaf = make_cert("test signer", leaf_k, ("test intermediate", int_k), **leaf_kw)  # type: ignore[arg-type]
    other = make_cert("other root", other_k, ca=True)
    (d / "ca.pem").write_bytes(pem(root))
    (d / "int.pem").write_bytes(pem(inter))
    (d / "leaf.pem").write_bytes(pem(leaf))
    (d / "other-ca.pem").write_bytes(pem(other))
    write_key(d / "leaf.key", leaf_k)
    return Pki(d / "ca.pem", d / "int.pem", d / "leaf.pem", d / "leaf.key", d / "other-ca.pem")


def copy_example(tmp: Path) -> Path:
    """A writable copy of the golden example (model, bundles, keys, certs)."""
    assert (EXAMPLE / "model.sig").exists(), f"golden example not found at {EXAMPLE}"
    dest = tmp / "example"
    shutil.copytree(EXAMPLE, dest)
    return dest


def keypair(d: Path, name: str = "k", curve: ec.EllipticCurve | None = None) -> tuple[Path, Path]:
    key = ec.generate_private_key(curve or ec.SECP256R1())
    return write_key(d / f"{name}.key", key), write_pub(d / f"{name}.pub", key.public_key())
