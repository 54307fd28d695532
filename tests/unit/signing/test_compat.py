"""What mlsec must *read* (spec §10 items 7-9): every relaxation model_signing allows."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from mlsec.errors import BundleError, VerificationError
from mlsec.signing import Bundle, KeySigner, KeyVerifier, load_private_key, load_public_key
from mlsec.signing.dsse import pae_compat
from mlsec.signing.verify import verify_model
from tests.unit.signing.pki import copy_example, keypair


@pytest.fixture
def ex(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


def _doc(ex: Path) -> dict:
    return json.loads((ex / "model.sig").read_text())


def _verify_doc(ex: Path, doc: dict):
    b = Bundle.from_json(json.dumps(doc))
    return verify_model(ex / "model", b, KeyVerifier(load_public_key(ex / "keys/pub.pem")))


def test_hint_absent(ex):
    doc = _doc(ex)
    doc["verificationMaterial"]["publicKey"] = {}
    assert _verify_doc(ex, doc).ok


def test_legacy_public_key_fields(ex):
    doc = _doc(ex)
    doc["verificationMaterial"]["publicKey"].update(
        {"rawBytes": "AAAA", "keyDetails": "PKIX_ECDSA_P256_SHA_256"}
    )
    assert _verify_doc(ex, doc).ok


@pytest.mark.parametrize("keyid", ["absent", "", None])
def test_keyid_variants(ex, keyid):
    doc = _doc(ex)
    sig = doc["dsseEnvelope"]["signatures"][0]
    if keyid == "absent":
        sig.pop("keyid", None)
    else:
        sig["keyid"] = keyid
    assert _verify_doc(ex, doc).ok


@pytest.mark.parametrize("tlog", ["absent", "empty"])
def test_tlog_entries_variants(ex, tlog):
    doc = _doc(ex)
    if tlog == "absent":
        doc["verificationMaterial"].pop("tlogEntries")
    else:
        doc["verificationMaterial"]["tlogEntries"] = []
    assert _verify_doc(ex, doc).ok


def _resign(ex: Path, st: dict, *, compat: bool = False) -> dict:
    key = load_private_key(ex / "keys/priv.pem")
    payload = json.dumps(st).encode()
    b = KeySigner(key).sign(payload)
    doc = json.loads(b.to_json())
    if compat:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        sig = key.sign(pae_compat(payload), ec.ECDSA(hashes.SHA256()))
        doc["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(sig).decode()
    return doc


def _statement(ex: Path) -> dict:
    return json.loads((ex / "model.sig.payload.json").read_text())


def _root(resources) -> str:
    return hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()


def test_any_resource_order(ex):
    st = _statement(ex)
    st["predicate"]["resources"].reverse()
    st["subject"][0]["digest"]["sha256"] = _root(st["predicate"]["resources"])
    assert _verify_doc(ex, _resign(ex, st)).ok


def test_unknown_predicate_keys_are_ignored(ex):
    st = _statement(ex)
    st["predicate"]["future"] = {"anything": 1}
    st["predicate"]["serialization"]["future"] = True
    assert _verify_doc(ex, _resign(ex, st)).ok


def test_v01_compat_predicate_and_pae_bug(ex):
    st = _statement(ex)
    compat = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [
            {"name": r["name"], "digest": {"sha256": r["digest"]}}
            for r in st["predicate"]["resources"]
        ],
        "predicateType": "https://model_signing/Digests/v0.1",
        "predicate": {"unused": "Unused, just passed due to API requirements"},
    }
    result = _verify_doc(ex, _resign(ex, compat, compat=True))
    assert result.ok and result.compat
    (ex / "model" / "config.json").write_text("{}")
    with pytest.raises(VerificationError, match=r"config\.json: digest differs"):
        _verify_doc(ex, _resign(ex, compat, compat=True))


@pytest.mark.parametrize("shard_size", [1000, 1000.0, 1e3])
def test_shard_manifest_with_float_shard_size(ex, shard_size):
    model = ex / "model"
    resources = []
    for p in sorted(
        (p for p in model.rglob("*") if p.is_file() and p.name != ".gitattributes"),
        key=lambda p: p.relative_to(model).parts,
    ):
        data = p.read_bytes()
        rel = p.relative_to(model).as_posix()
        for start in range(0, len(data), 1000):
            end = min(start + 1000, len(data))
            resources.append(
                {
                    "name": f"{rel}:{start}:{end}",
                    "algorithm": "sha256-sharded-1000",
                    "digest": hashlib.sha256(data[start:end]).hexdigest(),
                }
            )
    st = _statement(ex)
    st["predicate"]["resources"] = resources
    st["predicate"]["serialization"] = {
        "method": "shards",
        "hash_type": "sha256",
        "shard_size": shard_size,
        "allow_symlinks": False,
        "ignore_paths": [".git", ".gitattributes", ".github", ".gitignore"],
    }
    st["subject"][0]["digest"]["sha256"] = _root(resources)
    doc = _resign(ex, st)
    assert _verify_doc(ex, doc).ok
    data = bytearray((model / "model.safetensors").read_bytes())
    data[150_000] ^= 1
    (model / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(VerificationError, match=r"model\.safetensors"):
        _verify_doc(ex, doc)


def test_model_signing_api_shard_bundle_verifies(ex, tmp_path):
    """A real shard bundle written by the model_signing API (its CLI cannot write one)."""
    import model_signing as ms

    sig = tmp_path / "shard.sig"
    hashing = ms.hashing.Config().use_shard_serialization(shard_size=100_000)
    (
        ms.signing.Config()
        .use_elliptic_key_signer(private_key=ex / "keys/priv.pem")
        .set_hashing_config(hashing)
        .sign(ex / "model", sig)
    )
    doc = json.loads(sig.read_text())
    st = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    assert isinstance(st["predicate"]["serialization"]["shard_size"], float)
    result = _verify_doc(ex, doc)
    assert result.ok


@pytest.mark.parametrize("name", [".", "weights.bin"])
def test_single_file_resource_name(tmp_path, name):
    model = tmp_path / "weights.bin"
    model.write_bytes(b"abc" * 100)
    key, pub = keypair(tmp_path)
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    res = [{"name": name, "algorithm": "sha256", "digest": digest}]
    st = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "weights.bin", "digest": {"sha256": _root(res)}}],
        "predicateType": "https://model_signing/signature/v1.0",
        "predicate": {
            "resources": res,
            "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": False},
        },
    }
    b = KeySigner(load_private_key(key)).sign(json.dumps(st).encode())
    assert verify_model(model, b, KeyVerifier(load_public_key(pub))).ok


def test_empty_resources_rejected(ex):
    st = _statement(ex)
    st["predicate"]["resources"] = []
    st["subject"][0]["digest"]["sha256"] = hashlib.sha256(b"").hexdigest()
    with pytest.raises(BundleError, match="resources is empty"):
        _verify_doc(ex, _resign(ex, st))


def test_url_safe_base64_is_rejected(ex):
    doc = _doc(ex)
    doc["dsseEnvelope"]["payload"] = (
        doc["dsseEnvelope"]["payload"].replace("+", "-").replace("/", "_") + "-_"
    )
    with pytest.raises(BundleError, match="not valid base64"):
        Bundle.from_json(json.dumps(doc))


def test_shard_manifest_detects_a_file_that_grew_by_whole_shards(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "w.bin").write_bytes(b"a" * 2000)
    key, pub = keypair(tmp_path)
    data = (model / "w.bin").read_bytes()
    res = [
        {
            "name": f"w.bin:{s}:{s + 1000}",
            "algorithm": "sha256-sharded-1000",
            "digest": hashlib.sha256(data[s : s + 1000]).hexdigest(),
        }
        for s in (0, 1000)
    ]
    st = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "m", "digest": {"sha256": _root(res)}}],
        "predicateType": "https://model_signing/signature/v1.0",
        "predicate": {
            "resources": res,
            "serialization": {
                "method": "shards",
                "hash_type": "sha256",
                "shard_size": 1000.0,
                "allow_symlinks": False,
                "ignore_paths": [],
            },
        },
    }
    b = KeySigner(load_private_key(key)).sign(json.dumps(st).encode())
    assert verify_model(model, b, KeyVerifier(load_public_key(pub))).ok
    (model / "w.bin").write_bytes(data + b"appended")
    with pytest.raises(VerificationError, match=r"w\.bin: shards differ"):
        verify_model(model, b, KeyVerifier(load_public_key(pub)))
