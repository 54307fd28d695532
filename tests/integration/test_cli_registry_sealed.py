# ruff: noqa: F811 - the registry fixtures are imported from tests/unit/registry/conftest.py
"""``mlsec push --encrypt-to`` / ``mlsec pull --identity``: a model sealed with age in a real
docker-registry; the registry never sees file names or plaintext; the real ``age`` CLI can open
the sealed layer; a wrong identity leaves nothing behind."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

from mlsec.crypt import generate_identity
from tests.registry_server import Registry
from tests.unit.registry.conftest import (  # noqa: F401 - pytest fixtures
    make_model,
    registry,
    registry_cli,
    tree,
)


def _keys(tmp_path: Path, name: str) -> tuple[Path, str]:
    identity, recipient = generate_identity()
    path = tmp_path / f"{name}.txt"
    path.write_text(identity + "\n")
    return path, recipient


def test_sealed_directory_round_trip(registry_cli, registry: Registry, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    key, recipient = _keys(tmp_path, "key")
    ref = f"{registry.host}/sealed/tiny:v1"
    r = registry_cli("push", model, ref, "--encrypt-to", recipient, "--format", "json")
    assert r.exit_code == 0, r.stderr
    pushed = json.loads(r.stdout)
    assert pushed["layers"] == 1  # one sealed layer, whatever the model holds

    # Without an identity: the verified sealed layer, which the real age CLI opens.
    r = registry_cli("pull", ref, tmp_path / "sealed")
    assert r.exit_code == 0, r.stderr
    (sealed,) = (tmp_path / "sealed").iterdir()
    assert sealed.name == "model.tar.age"
    for rel in tree(model):  # no file name leaks into the registry's copy
        assert rel.encode() not in sealed.read_bytes()
    plain = subprocess.run(
        ["age", "-d", "-i", str(key), str(sealed)], capture_output=True, check=True
    ).stdout
    tar_path = tmp_path / "plain.tar"
    tar_path.write_bytes(plain)
    with tarfile.open(tar_path) as tf:
        assert sorted(m.name for m in tf.getmembers() if m.isfile()) == sorted(tree(model))

    # With the identity: the plaintext model, byte for byte.
    r = registry_cli("pull", ref, tmp_path / "out", "--identity", key, "--format", "json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["digest"] == pushed["digest"]
    assert tree(tmp_path / "out") == tree(model)
    # The extracted files are reported (files is the one verified ciphertext layer).
    assert {e["path"]: e["size"] for e in doc["extracted"]} == {
        rel: len(data) for rel, data in tree(model).items()
    }

    # --age-identity, as admit spells it, does the same; the table names each extracted file.
    r = registry_cli("pull", ref, tmp_path / "out2", "--age-identity", key)
    assert r.exit_code == 0, r.stderr
    assert f"-> {len(tree(model))} files" in r.stdout
    for rel in tree(model):
        assert f"  {rel}" in r.stdout


def test_sealed_single_file_and_wrong_identity(
    registry_cli, registry: Registry, tmp_path: Path
) -> None:
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"\x00" * 70_000 + b"end")
    _, recipient = _keys(tmp_path, "right")
    wrong, _ = _keys(tmp_path, "wrong")
    right = tmp_path / "right.txt"
    ref = f"{registry.host}/sealed/file:v1"
    assert registry_cli("push", weights, ref, "--encrypt-to", recipient).exit_code == 0
    r = registry_cli("pull", ref, tmp_path / "bad", "--identity", wrong)
    assert r.exit_code == 2 and "no identity matches any recipient" in r.stderr
    assert not (tmp_path / "bad").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".bad")] == []
    r = registry_cli("pull", ref, tmp_path / "good", "-i", right)
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "good" / "w.safetensors").read_bytes() == weights.read_bytes()


def test_identity_on_a_plain_model_and_bad_option_mixes(
    registry_cli, registry: Registry, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model")
    key, recipient = _keys(tmp_path, "key")
    ref = f"{registry.host}/sealed/plain:v1"
    assert registry_cli("push", model, ref).exit_code == 0
    r = registry_cli("pull", ref, tmp_path / "out", "--identity", key)
    assert r.exit_code == 2 and "not an encrypted model" in r.stderr
    assert not (tmp_path / "out").exists()
    r = registry_cli("push", model, ref, "--encrypt-to", recipient, "--ignore", "x")
    assert r.exit_code == 2 and "--encrypt-to seals the whole model" in r.stderr
    r = registry_cli("push", model, ref, "--encrypt-to", "age1notarecipient")
    assert r.exit_code == 2 and "Traceback" not in r.stderr


def test_sealed_pull_with_referrers_lands_them_beside_dest(
    registry_cli, registry: Registry, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model")
    key, recipient = _keys(tmp_path, "key")
    from tests.unit.signing.pki import keypair

    sig = tmp_path / "model.sig"
    skey, _pub = keypair(tmp_path, "signer")
    assert registry_cli("sign", model, "--key", skey, "-o", sig).exit_code == 0
    ref = f"{registry.host}/sealed/refs:v1"
    r = registry_cli("push", model, ref, "--encrypt-to", recipient, "--signature", sig)
    assert r.exit_code == 0, r.stderr
    r = registry_cli("pull", ref, tmp_path / "m", "-i", key, "--with-referrers")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "m.sig").read_bytes() == sig.read_bytes()
    assert tree(tmp_path / "m") == tree(model)
