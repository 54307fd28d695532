"""Test PKI and keys generated at test time with cryptography (nothing binary in git)."""

from __future__ import annotations

import atexit
import base64
import datetime as dt
import json
import os
import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The golden bundles model_signing 1.1.1 wrote once, where MLSEC_SIGNING_EXAMPLE points (a
# developer may have a copy; a user's clone has none). Only tests/integration/test_golden_example.py
# reads them, and it skips with the reason when the variable is unset. Every other test uses an
# example built at test time by the real model_signing CLI (build_example).
_GOLDEN_ENV = os.environ.get("MLSEC_SIGNING_EXAMPLE")
GOLDEN: Path | None = Path(_GOLDEN_ENV) if _GOLDEN_ENV else None
SIGNER_CN = "mlsec-eval throwaway signer"


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


def _write_model(model: Path) -> None:
    """The golden example's shape: weights, configs, an empty file, a subdirectory, a git file."""
    rng = random.Random(20261203)
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_text(
        json.dumps({"architectures": ["TinyNet"], "hidden_size": 64, "num_layers": 2}, indent=2)
    )
    (model / "model.safetensors").write_bytes(rng.randbytes(300_000))
    (model / "sub" / "extra_weights.bin").write_bytes(rng.randbytes(50_000))
    (model / "tokenizer.json").write_text('{"version": "1.0", "model": {"type": "BPE"}}\n')
    (model / "empty.txt").write_bytes(b"")
    (model / "README.md").write_text("# tiny\n\nA generated model for the signing tests.\n")
    (model / ".gitattributes").write_text("*.bin filter\n")


def _model_signing(*args: object) -> None:
    ms = shutil.which("model_signing") or "model_signing"
    proc = subprocess.run([ms, *map(str, args)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"model_signing {args[:2]} failed: {proc.stderr[-2000:]}"


def build_example(dest: Path) -> Path:
    """The golden example's layout, made now: keys, a 2-level PKI, and two bundles signed by the
    real model_signing CLI (key and certificate methods), plus the key bundle's DSSE payload."""
    _write_model(dest / "model")
    (dest / "keys").mkdir()
    key = ec.generate_private_key(ec.SECP256R1())
    (dest / "keys" / "priv.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    write_key(dest / "keys" / "priv.pkcs8.pem", key)
    write_pub(dest / "keys" / "pub.pem", key.public_key())
    cert = dest / "cert"
    cert.mkdir()
    ca_k = ec.generate_private_key(ec.SECP256R1())
    leaf_k = ec.generate_private_key(ec.SECP256R1())
    (cert / "ca-cert.pem").write_bytes(pem(make_cert("mlsec-eval throwaway CA", ca_k, ca=True)))
    write_key(cert / "ca-priv.pem", ca_k)
    leaf = make_cert(SIGNER_CN, leaf_k, ("mlsec-eval throwaway CA", ca_k))
    (cert / "signing-cert.pem").write_bytes(pem(leaf))
    write_key(cert / "signing-key.pem", leaf_k)
    _model_signing(
        "sign", "key", "--private_key", dest / "keys/priv.pem",
        "--signature", dest / "model.sig", dest / "model",
    )  # fmt: skip
    _model_signing(
        "sign", "certificate", "--private_key", cert / "signing-key.pem",
        "--signing_certificate", cert / "signing-cert.pem",
        "--certificate_chain", cert / "ca-cert.pem",
        "--signature", dest / "model.cert.sig", dest / "model",
    )  # fmt: skip
    doc = json.loads((dest / "model.sig").read_text())
    (dest / "model.sig.payload.json").write_bytes(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    return dest


_BUILT: list[Path] = []


def example_dir() -> Path:
    """One example per test process (model_signing takes about a second per bundle)."""
    if not _BUILT:
        root = Path(tempfile.mkdtemp(prefix="mlsec-example-"))
        atexit.register(shutil.rmtree, root, True)
        _BUILT.append(build_example(root / "example"))
    return _BUILT[0]


def copy_example(tmp: Path) -> Path:
    """A writable copy of the example (model, bundles, keys, certs), built at test time."""
    dest = tmp / "example"
    shutil.copytree(example_dir(), dest)
    return dest


def root_digest_of(example: Path) -> str:
    """The subject digest model_signing recorded in the example's key bundle."""
    st = json.loads((example / "model.sig.payload.json").read_text())
    return "sha256:" + str(st["subject"][0]["digest"]["sha256"])


def keypair(d: Path, name: str = "k", curve: ec.EllipticCurve | None = None) -> tuple[Path, Path]:
    key = ec.generate_private_key(curve or ec.SECP256R1())
    return write_key(d / f"{name}.key", key), write_pub(d / f"{name}.pub", key.public_key())
