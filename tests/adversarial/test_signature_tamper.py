"""Tamper matrix: every way a signed model or its signature can be altered must fail verify,
with a one-line error that names the file and the reason, and never a traceback.

Exit 1 = the signature does not verify / the model differs; exit 2 = malformed input or an
unusable key (DESIGN.md).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.conftest import run_mlsec
from tests.unit.signing.pki import keypair, make_pki, write_key

FILES = ["README.md", "config.json", "model.safetensors", "tokenizer.json", "training_state.pkl"]


@pytest.fixture
def signed(example_model: Path, tmp_path: Path, cli):
    key, pub = keypair(tmp_path)
    sig = tmp_path / "model.sig"
    r = cli("sign", example_model, "--key", key, "--output", sig)
    assert r.exit_code == 0, r.stderr
    return example_model, sig, key, pub


def _verify(cli, model, sig, pub, *extra):
    return cli("verify", model, "--signature", sig, "--key", pub, *extra)


def _one_line(r) -> str:
    lines = [ln for ln in r.stderr.strip().splitlines() if not ln.startswith("mlsec: hint:")]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def test_untampered_verifies(signed, cli):
    model, sig, _, pub = signed
    r = _verify(cli, model, sig, pub)
    assert r.exit_code == 0, r.stderr


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("where", ["first", "last"])
def test_one_byte_flipped(signed, cli, name, where):
    model, sig, _, pub = signed
    f = model / name
    data = bytearray(f.read_bytes())
    i = 0 if where == "first" else len(data) - 1
    data[i] ^= 0x01
    import hashlib

    before = hashlib.sha256(f.read_bytes()).hexdigest()
    f.write_bytes(bytes(data))
    r = _verify(cli, model, sig, pub)
    assert r.exit_code == 1
    line = _one_line(r)
    assert (
        f"{name}: digest differs (signed {before}, now {hashlib.sha256(data).hexdigest()})" in line
    )


def test_file_added(signed, cli):
    model, sig, _, pub = signed
    (model / "sub").mkdir()
    (model / "sub" / "backdoor.pkl").write_bytes(b"\x80\x04N.")
    r = _verify(cli, model, sig, pub)
    assert r.exit_code == 1
    assert "sub/backdoor.pkl: file is not covered by the signature" in _one_line(r)


def test_hidden_file_added(signed, cli):
    model, sig, _, pub = signed
    (model / ".hidden").write_text("x")
    r = _verify(cli, model, sig, pub)
    assert r.exit_code == 1
    assert ".hidden: file is not covered" in _one_line(r)


def test_file_removed(signed, cli):
    model, sig, _, pub = signed
    (model / "config.json").unlink()
    r = _verify(cli, model, sig, pub)
    assert r.exit_code == 1
    assert "config.json: signed file is missing" in _one_line(r)


def test_file_renamed(signed, cli):
    model, sig, _, pub = signed
    (model / "config.json").rename(model / "config2.json")
    r = _verify(cli, model, sig, pub)
    assert r.exit_code == 1
    line = _one_line(r)
    assert "config.json: signed file is missing" in line
    assert "config2.json: file is not covered by the signature" in line


def test_file_replaced_by_symlink(signed, cli):
    model, sig, _, pub = signed
    (model / "tokenizer.json").unlink()
    os.symlink("config.json", model / "tokenizer.json")
    r = _verify(cli, model, sig, pub)
    assert r.exit_code == 1
    assert "tokenizer.json: signed file is missing; now a symlink" in _one_line(r)
    # The caller cannot override the signed symlink policy.
    r = _verify(cli, model, sig, pub, "--ignore", "nothing")
    assert r.exit_code == 1


def test_symlink_leaving_the_model_is_refused(signed, cli, tmp_path):
    model, sig, _, pub = signed
    (tmp_path / "outside.txt").write_text("secret")
    os.symlink(tmp_path / "outside.txt", model / "link.txt")
    r = _verify(cli, model, sig, pub)
    assert r.exit_code == 2  # an unsafe model cannot be verified at all (DESIGN: unsafe symlink)
    assert "symlink points outside the artifact" in _one_line(r)


def test_signature_from_another_key(signed, cli, tmp_path):
    model, sig, _, _ = signed
    _, other_pub = keypair(tmp_path, "other")
    r = _verify(cli, model, sig, other_pub)
    assert r.exit_code == 1
    assert "signed by another key" in _one_line(r)


def test_signature_from_another_key_without_hint(signed, cli, tmp_path):
    model, sig, _, _ = signed
    doc = json.loads(sig.read_text())
    doc["verificationMaterial"]["publicKey"] = {}
    sig.write_text(json.dumps(doc))
    _, other_pub = keypair(tmp_path, "other")
    r = _verify(cli, model, sig, other_pub)
    assert r.exit_code == 1
    assert "signature does not verify" in _one_line(r)


def _edit_statement(sig: Path, edit) -> None:
    doc = json.loads(sig.read_text())
    st = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    edit(st)
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(st).encode()).decode()
    sig.write_text(json.dumps(doc))


def test_altered_payload(signed, cli):
    model, sig, _, pub = signed
    (model / "config.json").write_text('{"evil": true}')
    import hashlib

    def edit(st):
        for r in st["predicate"]["resources"]:
            if r["name"] == "config.json":
                r["digest"] = hashlib.sha256(b'{"evil": true}').hexdigest()
        st["subject"][0]["digest"]["sha256"] = hashlib.sha256(
            b"".join(bytes.fromhex(r["digest"]) for r in st["predicate"]["resources"])
        ).hexdigest()

    _edit_statement(sig, edit)
    r = _verify(cli, model, sig, pub)
    assert r.exit_code == 1
    assert "signature does not verify" in _one_line(r)


def test_altered_signature_bytes(signed, cli):
    model, sig, _, pub = signed
    doc = json.loads(sig.read_text())
    raw = bytearray(base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"]))
    raw[-1] ^= 1
    doc["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(raw).decode()
    sig.write_text(json.dumps(doc))
    r = _verify(cli, model, sig, pub)
    assert r.exit_code == 1
    assert "signature does not verify" in _one_line(r)


@pytest.mark.parametrize(
    "media_type",
    [
        "application/vnd.dev.sigstore.bundle.v0.2+json",
        "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "application/json",
        "",
    ],
)
def test_wrong_media_type(signed, cli, media_type):
    model, sig, _, pub = signed
    doc = json.loads(sig.read_text())
    doc["mediaType"] = media_type
    sig.write_text(json.dumps(doc))
    r = _verify(cli, model, sig, pub)
    assert r.exit_code == 2
    assert "mediaType" in _one_line(r) or "bundle version" in _one_line(r)


def test_alternative_media_type_spelling_is_accepted(signed, cli):
    model, sig, _, pub = signed
    doc = json.loads(sig.read_text())
    doc["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.3"
    sig.write_text(json.dumps(doc))
    assert _verify(cli, model, sig, pub).exit_code == 0


@pytest.mark.parametrize(
    "where",
    [(), ("dsseEnvelope",), ("verificationMaterial",), ("verificationMaterial", "publicKey")],
)
def test_unknown_fields_are_rejected(signed, cli, where):
    model, sig, _, pub = signed
    doc = json.loads(sig.read_text())
    target = doc
    for k in where:
        target = target[k]
    target["x-smuggled"] = "hello"
    sig.write_text(json.dumps(doc))
    r = _verify(cli, model, sig, pub)
    assert r.exit_code == 2
    assert "unknown field 'x-smuggled'" in _one_line(r)


def _sign_statement(key_path: Path, statement: dict, out: Path) -> None:
    from mlsec.signing import KeySigner, load_private_key

    bundle = KeySigner(load_private_key(key_path)).sign(json.dumps(statement).encode())
    out.write_bytes(bundle.to_json())


@pytest.mark.parametrize("bad", ["../outside.txt", "/etc/hostname", "sub/../../outside.txt", "./x"])
def test_manifest_entry_outside_the_model_is_never_read(signed, cli, tmp_path, bad):
    """A validly signed manifest that names a path outside the model: rejected, nothing opened."""
    import hashlib

    model, sig, key, pub = signed
    outside = tmp_path / "outside.txt"
    outside.write_text("outside")
    st = json.loads(base64.b64decode(json.loads(sig.read_text())["dsseEnvelope"]["payload"]))
    st["predicate"]["resources"].append(
        {"name": bad, "algorithm": "sha256", "digest": hashlib.sha256(b"outside").hexdigest()}
    )
    st["subject"][0]["digest"]["sha256"] = hashlib.sha256(
        b"".join(bytes.fromhex(r["digest"]) for r in st["predicate"]["resources"])
    ).hexdigest()
    _sign_statement(key, st, sig)
    r = _verify(cli, model, sig, pub)
    assert r.exit_code == 1
    assert f"{bad}: manifest entry" in _one_line(r)


def test_inconsistent_root_digest_is_rejected(signed, cli):
    model, sig, key, pub = signed
    st = json.loads(base64.b64decode(json.loads(sig.read_text())["dsseEnvelope"]["payload"]))
    st["subject"][0]["digest"]["sha256"] = "00" * 32
    _sign_statement(key, st, sig)
    r = _verify(cli, model, sig, pub)
    assert r.exit_code == 2
    assert "subject digest" in _one_line(r)


@pytest.mark.parametrize(
    "content",
    [b"", b"   ", b"{", b"garbage\x00\xff", b"[]", b"null", b'{"mediaType": 3}'],
    ids=["empty", "blank", "truncated-brace", "binary", "list", "null", "bad-type"],
)
def test_garbage_bundle_is_one_line_exit_2(signed, cli, content):
    model, sig, _, pub = signed
    sig.write_bytes(content)
    r = _verify(cli, model, sig, pub)
    assert r.exit_code == 2
    assert str(sig) in _one_line(r)


def test_truncated_bundle_subprocess_no_traceback(signed):
    model, sig, _, pub = signed
    data = sig.read_bytes()
    sig.write_bytes(data[: len(data) // 2])
    proc = run_mlsec("verify", model, "--signature", sig, "--key", pub)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"mlsec: error: {sig}: bundle:")
    assert "malformed JSON" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_empty_signature_list(signed, cli):
    model, sig, _, pub = signed
    doc = json.loads(sig.read_text())
    doc["dsseEnvelope"]["signatures"] = []
    sig.write_text(json.dumps(doc))
    r = _verify(cli, model, sig, pub)
    assert r.exit_code == 2
    assert "no signature" in _one_line(r)


def test_wrong_payload_type(signed, cli, tmp_path):
    model, sig, key, pub = signed
    from mlsec.signing import KeySigner, load_private_key

    payload = base64.b64decode(json.loads(sig.read_text())["dsseEnvelope"]["payload"])
    b = KeySigner(load_private_key(key)).sign(payload, "application/json")
    sig.write_bytes(b.to_json())
    r = _verify(cli, model, sig, pub)
    assert r.exit_code == 1
    assert "payload type" in _one_line(r)


def test_key_bundle_verified_as_certificate(signed, cli, tmp_path):
    model, sig, _, _ = signed
    pki = make_pki(tmp_path / "pki")
    r = cli("verify", model, "-s", sig, "--certificate-chain", pki.ca_cert)
    assert r.exit_code == 1
    assert "made with a key" in _one_line(r)


def _write_raw_key(path: Path, key) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


@pytest.mark.parametrize(
    "make",
    [
        lambda: rsa.generate_private_key(65537, 2048),
        lambda: ed25519.Ed25519PrivateKey.generate(),
        lambda: ec.generate_private_key(ec.SECP256K1()),
    ],
    ids=["rsa", "ed25519", "secp256k1"],
)
def test_unsupported_signing_key(example_model, cli, tmp_path, make):
    key = _write_raw_key(tmp_path / "bad.key", make())
    r = cli("sign", example_model, "--key", key, "-o", tmp_path / "x.sig")
    assert r.exit_code == 2
    assert "not supported" in _one_line(r) or "unsupported curve" in _one_line(r)
    assert not (tmp_path / "x.sig").exists()


@pytest.mark.parametrize("kind", ["rsa", "secp256k1"])
def test_unsupported_verification_key(signed, cli, tmp_path, kind):
    model, sig, _, _ = signed
    k = (
        rsa.generate_private_key(65537, 2048)
        if kind == "rsa"
        else ec.generate_private_key(ec.SECP256K1())
    )
    pub = tmp_path / "bad.pub"
    pub.write_bytes(
        k.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    r = _verify(cli, model, sig, pub)
    assert r.exit_code == 2
    assert "not supported" in _one_line(r) or "unsupported curve" in _one_line(r)


def test_p384_signature_does_not_verify_with_p256_key(example_model, cli, tmp_path):
    key384, _ = keypair(tmp_path, "p384", ec.SECP384R1())
    _, pub256 = keypair(tmp_path, "p256")
    sig = tmp_path / "s.sig"
    assert cli("sign", example_model, "--key", key384, "-o", sig).exit_code == 0
    r = _verify(cli, example_model, sig, pub256)
    assert r.exit_code == 1


def test_empty_model_is_rejected(tmp_path, cli):
    key, _ = keypair(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".gitignore").write_text("*")
    r = cli("sign", tmp_path / "empty", "--key", key)
    assert r.exit_code == 2
    assert "nothing to sign" in _one_line(r)


def test_everything_ignored_is_rejected(example_model, tmp_path, cli):
    key, _ = keypair(tmp_path)
    r = cli("sign", example_model, "--key", key, "--ignore", "*")
    assert r.exit_code == 2
    assert "nothing to sign" in _one_line(r)


@pytest.mark.parametrize("when", ["expired", "not-yet-valid"])
def test_certificate_outside_validity_is_refused_at_signing(example_model, tmp_path, cli, when):
    now = dt.datetime.now(dt.UTC)
    if when == "expired":
        kw = {"not_before": now - dt.timedelta(days=10), "not_after": now - dt.timedelta(days=1)}
    else:
        kw = {"not_before": now + dt.timedelta(days=1), "not_after": now + dt.timedelta(days=10)}
    pki = make_pki(tmp_path / "pki", **kw)
    r = cli(
        "sign",
        example_model,
        "--method",
        "certificate",
        "--key",
        pki.leaf_key,
        "--signing-certificate",
        pki.leaf_cert,
        "--certificate-chain",
        pki.int_cert,
        "-o",
        tmp_path / "c.sig",
    )
    assert r.exit_code == 2
    assert ("expired" if when == "expired" else "not valid yet") in _one_line(r)


def test_certificate_without_signing_usage_fails_verification(example_model, tmp_path, cli):
    pki = make_pki(tmp_path / "pki", code_signing=False)
    sig = tmp_path / "c.sig"
    r = cli(
        "sign",
        example_model,
        "--method",
        "certificate",
        "--key",
        pki.leaf_key,
        "--signing-certificate",
        pki.leaf_cert,
        "--certificate-chain",
        pki.int_cert,
        "-o",
        sig,
    )
    assert r.exit_code == 0, r.stderr
    r = cli("verify", example_model, "-s", sig, "--certificate-chain", pki.ca_cert)
    assert r.exit_code == 1
    assert "is not for signing" in _one_line(r)


def test_certificate_not_matching_key_is_refused(example_model, tmp_path, cli):
    pki = make_pki(tmp_path / "pki")
    other = write_key(tmp_path / "other.key", ec.generate_private_key(ec.SECP256R1()))
    r = cli(
        "sign",
        example_model,
        "--method",
        "certificate",
        "--key",
        other,
        "--signing-certificate",
        pki.leaf_cert,
        "-o",
        tmp_path / "c.sig",
    )
    assert r.exit_code == 2
    assert "does not match the private key" in _one_line(r)


def test_missing_intermediate_fails_chain(example_model, tmp_path, cli):
    pki = make_pki(tmp_path / "pki")
    sig = tmp_path / "c.sig"
    r = cli(
        "sign",
        example_model,
        "--method",
        "certificate",
        "--key",
        pki.leaf_key,
        "--signing-certificate",
        pki.leaf_cert,
        "-o",
        sig,
    )
    assert r.exit_code == 0, r.stderr
    r = cli("verify", example_model, "-s", sig, "--certificate-chain", pki.ca_cert)
    assert r.exit_code == 1
    assert "does not chain to a trusted CA" in _one_line(r)


def test_wrong_passphrase_is_one_line_exit_2(example_model, tmp_path):
    prefix = tmp_path / "k"
    assert run_mlsec("keygen", "-o", prefix, env={"MLSEC_PASSPHRASE": "right"}).returncode == 0
    proc = run_mlsec(
        "sign", example_model, "--key", f"{prefix}.key", env={"MLSEC_PASSPHRASE": "wrong"}
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"mlsec: error: {prefix}.key: wrong passphrase"


def test_caller_ignore_cannot_hide_a_changed_file_silently(signed, cli):
    """A caller --ignore is applied but reported, and a signed file it hides is 'missing'."""
    model, sig, _, pub = signed
    (model / "config.json").write_text("{}")
    r = _verify(cli, model, sig, pub, "--ignore", "config.json", "--format", "json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["policy"]["caller_ignore_paths"] == ["config.json"]
    assert doc["differences"][0]["path"] == "config.json"


def test_symlink_added_after_signing(signed, cli):
    model, sig, _, pub = signed
    os.symlink("config.json", model / "pytorch_model.bin")
    r = _verify(cli, model, sig, pub)
    assert r.exit_code == 1
    assert "pytorch_model.bin: file is not covered by the signature (symlink" in _one_line(r)


def test_symlink_in_model_refused_at_signing(example_model, tmp_path, cli):
    key, _ = keypair(tmp_path)
    os.symlink("config.json", example_model / "alias.json")
    r = cli("sign", example_model, "--key", key, "-o", tmp_path / "s.sig")
    assert r.exit_code == 2
    assert "alias.json: is a symlink" in _one_line(r)
    r = cli("sign", example_model, "--key", key, "-o", tmp_path / "s.sig", "--ignore", "alias.json")
    assert r.exit_code == 0


def test_keyless_bundle_without_transparency_log_is_rejected(signed, cli, tmp_path):
    """A forged 'keyless' bundle: a self-made certificate and no Rekor entry. One line, no trace."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from tests.unit.signing.pki import make_cert

    model, sig, _, _ = signed
    k = ec.generate_private_key(ec.SECP256R1())
    cert = make_cert("attacker", k)
    doc = json.loads(sig.read_text())
    doc["verificationMaterial"] = {
        "certificate": {"rawBytes": base64.b64encode(cert.public_bytes(Encoding.DER)).decode()},
        "tlogEntries": [],
    }
    sig.write_text(json.dumps(doc))
    r = cli(
        "verify",
        model,
        "-s",
        sig,
        "--identity",
        "attacker@example.com",
        "--issuer",
        "https://accounts.google.com",
    )
    assert r.exit_code in (1, 2)
    assert _one_line(r).startswith("mlsec: error: ")


def test_deeply_nested_bundle_json(signed, cli):
    model, sig, _, pub = signed
    sig.write_text("[" * 200_000 + "]" * 200_000)
    r = _verify(cli, model, sig, pub)
    assert r.exit_code == 2
    assert "JSON nested deeper than 128 levels" in _one_line(r)
