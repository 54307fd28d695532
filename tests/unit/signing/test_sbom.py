"""Signed SBOM attestations: subject = the model's root digest, predicate = the CycloneDX BOM."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from tests.unit.signing.pki import keypair


def _bom(model: Path) -> dict:
    comps = []
    for p in sorted(model.rglob("*")):
        if p.is_file():
            comps.append(
                {
                    "type": "file",
                    "name": p.relative_to(model).as_posix(),
                    "hashes": [
                        {"alg": "SHA-256", "content": hashlib.sha256(p.read_bytes()).hexdigest()}
                    ],
                }
            )
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "components": [{"type": "machine-learning-model", "name": model.name, "components": comps}],
    }


def _setup(example_model: Path, tmp_path: Path, cli):
    key, pub = keypair(tmp_path)
    bom = tmp_path / "bom.json"
    bom.write_text(json.dumps(_bom(example_model)))
    r = cli("sign", "--sbom", bom, example_model, "--key", key)
    assert r.exit_code == 0, r.stderr
    sig = tmp_path / "bom.json.sig"
    assert sig.exists()
    return bom, sig, pub


def test_sbom_sign_and_verify(example_model, tmp_path, cli):
    bom, sig, pub = _setup(example_model, tmp_path, cli)
    st = json.loads(base64.b64decode(json.loads(sig.read_text())["dsseEnvelope"]["payload"]))
    assert st["predicateType"] == "https://cyclonedx.org/bom"
    assert st["predicate"] == json.loads(bom.read_text())
    r = cli("verify", "--sbom", bom, "--signature", sig, example_model, "--key", pub)
    assert r.exit_code == 0, r.stderr
    # The subject is the same root digest a model signature carries.
    key2, _ = keypair(tmp_path, "m")
    r = cli("sign", example_model, "--key", key2, "-o", tmp_path / "m.sig", "-f", "json")
    assert json.loads(r.stdout)["root_digest"] == "sha256:" + st["subject"][0]["digest"]["sha256"]


def test_sbom_edited_after_signing(example_model, tmp_path, cli):
    bom, sig, pub = _setup(example_model, tmp_path, cli)
    doc = json.loads(bom.read_text())
    doc["version"] = 2
    bom.write_text(json.dumps(doc))
    r = cli("verify", "--sbom", bom, "-s", sig, example_model, "--key", pub)
    assert r.exit_code == 1
    assert "differs from the SBOM that was signed" in r.stderr


def test_model_changed_after_sbom_signing(example_model, tmp_path, cli):
    bom, sig, pub = _setup(example_model, tmp_path, cli)
    (example_model / "config.json").write_text("{}")
    r = cli("verify", "--sbom", bom, "-s", sig, example_model, "--key", pub, "-f", "json")
    assert r.exit_code == 1
    paths = {d["path"] for d in json.loads(r.stdout)["differences"]}
    assert paths == {".", "config.json"}


def test_sbom_that_does_not_describe_the_model_is_not_signed(example_model, tmp_path, cli):
    key, _ = keypair(tmp_path)
    doc = _bom(example_model)
    doc["components"][0]["components"].pop()
    bom = tmp_path / "bom.json"
    bom.write_text(json.dumps(doc))
    r = cli("sign", "--sbom", bom, example_model, "--key", key)
    assert r.exit_code == 2
    assert "does not describe" in r.stderr


def test_model_signature_is_not_an_sbom_signature(example_model, tmp_path, cli):
    bom, _, _ = _setup(example_model, tmp_path, cli)
    key, pub2 = keypair(tmp_path, "m")
    cli("sign", example_model, "--key", key, "-o", tmp_path / "m.sig")
    r = cli("verify", "--sbom", bom, "-s", tmp_path / "m.sig", example_model, "--key", pub2)
    assert r.exit_code == 1
    assert "predicateType" in r.stderr


def test_not_cyclonedx(example_model, tmp_path, cli):
    key, _ = keypair(tmp_path)
    (tmp_path / "x.json").write_text('{"spdxVersion": "SPDX-2.3"}')
    r = cli("sign", "--sbom", tmp_path / "x.json", example_model, "--key", key)
    assert r.exit_code == 2
    assert "not a CycloneDX JSON document" in r.stderr


def test_sbom_kept_inside_the_model(example_model, tmp_path, cli):
    key, pub = keypair(tmp_path)
    bom = example_model / "sbom.cdx.json"
    bom.write_text(json.dumps(_bom(example_model)))  # written before it existed: lists the rest
    r = cli("sign", "--sbom", bom, example_model, "--key", key)
    assert r.exit_code == 0, r.stderr
    assert (example_model / "sbom.cdx.json.sig").exists()
    r = cli("verify", "--sbom", bom, example_model, "--key", pub)
    assert r.exit_code == 0, r.stderr


def test_load_bom_bounds_and_one_line_errors(tmp_path, monkeypatch):
    import mlsec.signing.sbom as sbom_mod
    from mlsec.errors import SigningError

    monkeypatch.setattr(sbom_mod, "MAX_BOM_BYTES", 1000)
    big = tmp_path / "big.json"
    big.write_text('{"bomFormat": "CycloneDX", "x": "' + "a" * 2000 + '"}')
    with pytest.raises(SigningError, match="larger than 256 MiB"):
        sbom_mod.load_bom(big)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 500 + "]" * 500)
    with pytest.raises(SigningError, match="nested deeper than"):
        sbom_mod.load_bom(deep)
    deeper = tmp_path / "deeper.json"
    monkeypatch.setattr(sbom_mod, "MAX_BOM_BYTES", 10**6)
    deeper.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SigningError, match="nested deeper than"):
        sbom_mod.load_bom(deeper)
