"""keygen / key loading / sign defaults / recorded policy, through the library and the CLI."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from mlsec.errors import KeyFileError
from mlsec.signing import Passphrase, load_private_key, load_public_key
from mlsec.signing.keys import key_hint
from tests.conftest import run_mlsec
from tests.unit.signing.pki import example_dir, keypair


def test_keygen_encrypted_pkcs8_mode_0600(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("MLSEC_PASSPHRASE", "s3cret")
    r = cli("keygen", "--output", tmp_path / "k")
    assert r.exit_code == 0, r.stderr
    key = tmp_path / "k.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert (tmp_path / "k.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    k = load_private_key(key, Passphrase(b"s3cret"))
    assert k.curve.name == "secp256r1"
    assert key_hint(k.public_key()) == key_hint(load_public_key(tmp_path / "k.pub"))


def test_keygen_p384_and_passphrase_file(tmp_path, cli, monkeypatch):
    monkeypatch.delenv("MLSEC_PASSPHRASE", raising=False)
    pf = tmp_path / "pw"
    pf.write_text("from-a-file\n")
    r = cli("keygen", "-o", tmp_path / "k", "--curve", "p384", "--passphrase-file", pf)
    assert r.exit_code == 0, r.stderr
    assert (
        load_private_key(tmp_path / "k.key", Passphrase(b"from-a-file")).curve.name == "secp384r1"
    )


def test_keygen_needs_explicit_no_passphrase_without_terminal(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MLSEC_PASSPHRASE"}
    with open(os.devnull) as devnull:
        proc = run_mlsec("keygen", "-o", tmp_path / "k", env=env, stdin=devnull)
    assert proc.returncode == 2
    assert "no terminal" in proc.stderr
    assert not (tmp_path / "k.key").exists()
    proc = run_mlsec("keygen", "-o", tmp_path / "k", "--no-passphrase")
    assert proc.returncode == 0
    assert "BEGIN PRIVATE KEY" in (tmp_path / "k.key").read_text()


def test_keygen_refuses_to_overwrite(tmp_path, cli):
    assert cli("keygen", "-o", tmp_path / "k", "--no-passphrase").exit_code == 0
    r = cli("keygen", "-o", tmp_path / "k", "--no-passphrase")
    assert r.exit_code == 2
    assert "already exists" in r.stderr


def test_passphrase_never_in_repr():
    assert "hunter2" not in repr(Passphrase(b"hunter2"))


@pytest.mark.parametrize("name", ["priv.pem", "priv.pkcs8.pem"])
def test_load_sec1_and_pkcs8(name):
    ex = example_dir()
    k = load_private_key(ex / "keys" / name)
    # The hint model_signing wrote into its bundle is the SHA-256 of the public key PEM.
    hint = json.loads((ex / "model.sig").read_text())["verificationMaterial"]["publicKey"]["hint"]
    assert key_hint(k.public_key()) == hint


def test_encrypted_key_without_passphrase(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("MLSEC_PASSPHRASE", "x")
    cli("keygen", "-o", tmp_path / "k")
    with pytest.raises(KeyFileError, match="encrypted and no passphrase"):
        load_private_key(tmp_path / "k.key")
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        load_private_key(tmp_path / "k.key", Passphrase(b"y"))


def test_garbage_key(tmp_path):
    (tmp_path / "k").write_text("nope")
    with pytest.raises(KeyFileError, match="not a PEM private key"):
        load_private_key(tmp_path / "k")
    with pytest.raises(KeyFileError, match="not a PEM public key"):
        load_public_key(tmp_path / "k")


def test_default_output_is_beside_the_model(example_model, tmp_path, cli):
    key, pub = keypair(tmp_path)
    r = cli("sign", example_model, "--key", key)
    assert r.exit_code == 0, r.stderr
    sig = example_model.with_name(example_model.name + ".sig")
    assert sig.exists()
    assert cli("verify", example_model, "--key", pub).exit_code == 0


def test_signature_inside_the_model_is_excluded(example_model, tmp_path, cli):
    key, pub = keypair(tmp_path)
    sig = example_model / "model.sig"
    assert cli("sign", example_model, "--key", key, "-o", sig).exit_code == 0
    st = json.loads(base64.b64decode(json.loads(sig.read_text())["dsseEnvelope"]["payload"]))
    assert "model.sig" in st["predicate"]["serialization"]["ignore_paths"]
    assert "model.sig" not in {r["name"] for r in st["predicate"]["resources"]}
    assert cli("verify", example_model, "-s", sig, "--key", pub).exit_code == 0


def test_recorded_symlink_policy_is_applied(example_model, tmp_path, cli):
    key, pub = keypair(tmp_path)
    os.symlink("config.json", example_model / "config-link.json")
    sig = tmp_path / "s.sig"
    assert cli("sign", example_model, "--key", key, "-o", sig, "--allow-symlinks").exit_code == 0
    # No --allow-symlinks at verify: the signed policy says to follow it.
    r = cli("verify", example_model, "-s", sig, "--key", pub, "-f", "json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["policy"]["allow_symlinks"] is True


def test_recorded_ignore_is_applied_and_caller_ignore_reported(example_model, tmp_path, cli):
    key, pub = keypair(tmp_path)
    (example_model / "logs").mkdir()
    (example_model / "logs" / "a.txt").write_text("1")
    sig = tmp_path / "s.sig"
    assert cli("sign", example_model, "--key", key, "-o", sig, "--ignore", "logs").exit_code == 0
    (example_model / "logs" / "b.txt").write_text("2")
    (example_model / "scratch.txt").write_text("3")
    r = cli(
        "verify", example_model, "-s", sig, "--key", pub, "--ignore", "scratch.txt", "-f", "json"
    )
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert "logs" in doc["policy"]["signed_ignore_paths"]
    assert doc["policy"]["caller_ignore_paths"] == ["scratch.txt"]


def test_ignore_unsigned_files(example_model, tmp_path, cli):
    key, pub = keypair(tmp_path)
    sig = tmp_path / "s.sig"
    assert cli("sign", example_model, "--key", key, "-o", sig).exit_code == 0
    (example_model / "added.txt").write_text("x")
    assert cli("verify", example_model, "-s", sig, "--key", pub).exit_code == 1
    r = cli(
        "verify", example_model, "-s", sig, "--key", pub, "--ignore-unsigned-files", "-f", "json"
    )
    assert r.exit_code == 0
    assert json.loads(r.stdout)["unsigned_files_tolerated"] == ["added.txt"]


def test_verify_needs_exactly_one_method(example_model, tmp_path, cli):
    r = cli("verify", example_model, "-s", tmp_path / "x.sig")
    assert r.exit_code == 2
    assert "exactly one of" in r.stderr


def test_sign_json_output_schema(example_model, tmp_path, cli):
    key, _ = keypair(tmp_path)
    r = cli("sign", example_model, "--key", key, "-o", tmp_path / "s.sig", "-f", "json")
    doc = json.loads(r.stdout)
    assert doc["schema"] == "mlsec/sign/v1"
    assert set(doc) >= {"model", "signature", "method", "root_digest", "files", "ignore_paths"}


def test_verify_json_output_schema(example_model, tmp_path, cli):
    key, pub = keypair(tmp_path)
    cli("sign", example_model, "--key", key, "-o", tmp_path / "s.sig")
    r = cli("verify", example_model, "-s", tmp_path / "s.sig", "--key", pub, "-f", "json")
    doc = json.loads(r.stdout)
    assert list(doc) == [
        "schema",
        "ok",
        "model",
        "method",
        "signer",
        "root_digest",
        "files",
        "differences",
        "policy",
        "unsigned_files_tolerated",
        "notes",
    ]
    assert doc["schema"] == "mlsec/verify/v1"


def test_keyless_sign_offline_is_one_line(example_model, tmp_path, cli):
    r = cli(
        "sign",
        example_model,
        "--method",
        "sigstore",
        "--identity-token",
        "not.a.jwt",
        "-o",
        tmp_path / "s.sig",
    )
    assert r.exit_code == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("mlsec: error: sigstore:")


def test_keyless_verify_rejects_key_bundle(example_model, tmp_path, cli):
    key, _ = keypair(tmp_path)
    cli("sign", example_model, "--key", key, "-o", tmp_path / "s.sig")
    r = cli(
        "verify",
        example_model,
        "-s",
        tmp_path / "s.sig",
        "--identity",
        "a@b.c",
        "--issuer",
        "https://accounts.google.com",
    )
    assert r.exit_code == 1
    assert "not keyless" in r.stderr


def test_keygen_prefix_with_suffix(tmp_path, cli):
    assert cli("keygen", "-o", tmp_path / "signer.key", "--no-passphrase").exit_code == 0
    assert (tmp_path / "signer.key").exists() and (tmp_path / "signer.pub").exists()


def test_verify_missing_model_is_exit_2(tmp_path, cli):
    key, pub = keypair(tmp_path)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "f").write_text("x")
    cli("sign", tmp_path / "m", "--key", key, "-o", tmp_path / "s.sig")
    r = cli("verify", tmp_path / "nope", "-s", tmp_path / "s.sig", "--key", pub)
    assert r.exit_code == 2
    assert "no such file or directory" in r.stderr


def test_sign_with_passphrase_file(example_model, tmp_path, cli, monkeypatch):
    monkeypatch.delenv("MLSEC_PASSPHRASE", raising=False)
    pf = tmp_path / "pw"
    pf.write_text("file-secret\n")
    assert cli("keygen", "-o", tmp_path / "k", "--passphrase-file", pf).exit_code == 0
    r = cli("sign", example_model, "--key", tmp_path / "k.key", "--passphrase-file", pf)
    assert r.exit_code == 0, r.stderr
    pf.write_text("not-it\n")
    r = cli("sign", example_model, "--key", tmp_path / "k.key", "--passphrase-file", pf)
    assert r.exit_code == 2
    assert r.stderr.strip() == f"mlsec: error: {tmp_path / 'k.key'}: wrong passphrase"
