"""A signed statement that can be read two ways does not verify (exit 1), whoever signed it.

Each case is a statement signed by the trusted key (built here, at test time) listing one file
twice, or under two spellings of one path, or with a key given twice in the JSON itself.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from mlsec.errors import VerificationError
from mlsec.signing.dsse import IN_TOTO_PAYLOAD_TYPE
from mlsec.signing.manifest import (
    PREDICATE_TYPE,
    PREDICATE_TYPE_COMPAT,
    STATEMENT_TYPE,
    Manifest,
    Resource,
    root_digest,
)
from mlsec.signing.signers import KeySigner
from mlsec.signing.verifiers import KeyVerifier
from mlsec.signing.verify import verify_model


def _model(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "w").mkdir(parents=True)
    (root / "config.json").write_text('{"model_type": "bert"}')
    (root / "w" / "a.bin").write_bytes(b"weights")
    return root


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _statement(resources: list[tuple[str, str]]) -> bytes:
    res = [Resource(n, "sha256", d) for n, d in resources]
    doc = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": "model", "digest": {"sha256": root_digest(res)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {
                "method": "files",
                "hash_type": "sha256",
                "allow_symlinks": False,
                "ignore_paths": [],
            },
            "resources": [r.to_dict() for r in res],
        },
    }
    return json.dumps(doc).encode()


@pytest.fixture
def signer_and_verifier() -> tuple[KeySigner, KeyVerifier]:
    key = ec.generate_private_key(ec.SECP256R1())
    return KeySigner(key), KeyVerifier(key.public_key())


def test_an_honest_statement_verifies(tmp_path, signer_and_verifier) -> None:
    signer, verifier = signer_and_verifier
    root = _model(tmp_path)
    payload = _statement(
        [("config.json", _sha(b'{"model_type": "bert"}')), ("w/a.bin", _sha(b"weights"))]
    )
    result = verify_model(root, signer.sign(payload, IN_TOTO_PAYLOAD_TYPE), verifier)
    assert result.ok


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("w/a.bin", "w/a.bin"),  # the same name twice
        ("w/a.bin", "./w/a.bin"),  # normalises to the same file
        ("w/a.bin", "w//a.bin"),
        ("w/a.bin", "w/x/../a.bin"),
        ("w/a.bin", "w\\a.bin"),
    ],
)
def test_one_file_listed_twice_does_not_verify(
    tmp_path, signer_and_verifier, first: str, second: str
) -> None:
    signer, verifier = signer_and_verifier
    root = _model(tmp_path)
    cfg = ("config.json", _sha(b'{"model_type": "bert"}'))
    # Whichever entry a verifier keeps, one of these two orders matches the model on disk.
    for pair in (
        [(first, _sha(b"other")), (second, _sha(b"weights"))],
        [(first, _sha(b"weights")), (second, _sha(b"other"))],
    ):
        bundle = signer.sign(_statement([cfg, *pair]), IN_TOTO_PAYLOAD_TYPE)
        with pytest.raises(VerificationError, match="ambiguous"):
            verify_model(root, bundle, verifier)


def test_unicode_spellings_of_one_name_are_one_file() -> None:
    nfc, nfd = "caf\u00e9.bin", "cafe\u0301.bin"
    payload = _statement([(nfc, _sha(b"1")), (nfd, _sha(b"2"))])
    with pytest.raises(VerificationError, match="ambiguous"):
        Manifest.from_statement(payload)


def test_a_duplicate_json_key_in_the_statement_does_not_verify(
    tmp_path, signer_and_verifier
) -> None:
    signer, verifier = signer_and_verifier
    root = _model(tmp_path)
    honest = _statement([("config.json", _sha(b"x")), ("w/a.bin", _sha(b"weights"))])
    # Two "resources" keys: a first-wins reader and a last-wins reader see different manifests.
    good = json.loads(
        _statement(
            [("config.json", _sha(b'{"model_type": "bert"}')), ("w/a.bin", _sha(b"weights"))]
        )
    )
    text = honest.decode()
    extra = json.dumps(good["predicate"]["resources"])
    text = text.replace('"resources": ', f'"resources": {extra}, "resources": ', 1)
    bundle = signer.sign(text.encode(), IN_TOTO_PAYLOAD_TYPE)
    with pytest.raises(VerificationError, match=r"ambiguous.*duplicate key 'resources'"):
        verify_model(root, bundle, verifier)


def test_a_single_file_named_twice_does_not_verify(tmp_path, signer_and_verifier) -> None:
    signer, verifier = signer_and_verifier
    f = tmp_path / "model.bin"
    f.write_bytes(b"weights")
    # model_signing names a single file "."; the OMS spec its basename: both at once is ambiguous.
    payload = _statement([(".", _sha(b"other")), ("model.bin", _sha(b"weights"))])
    with pytest.raises(VerificationError, match="ambiguous"):
        verify_model(f, signer.sign(payload, IN_TOTO_PAYLOAD_TYPE), verifier)


def test_the_legacy_statement_form_is_checked_too() -> None:
    doc = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": "a.bin", "digest": {"sha256": _sha(b"1")}},
            {"name": "./a.bin", "digest": {"sha256": _sha(b"2")}},
        ],
        "predicateType": PREDICATE_TYPE_COMPAT,
    }
    with pytest.raises(VerificationError, match="ambiguous"):
        Manifest.from_statement(json.dumps(doc).encode())


def test_a_sbom_listing_a_file_twice_does_not_match(tmp_path) -> None:
    from mlsec.artifact import open_artifact
    from mlsec.signing.sbom import compare_files

    root = _model(tmp_path)
    art = open_artifact(root).with_digests()

    def comp(name: str, data: bytes) -> dict[str, object]:
        return {"type": "file", "name": name, "hashes": [{"alg": "SHA-256", "content": _sha(data)}]}

    files = [comp("config.json", b'{"model_type": "bert"}'), comp("w/a.bin", b"weights")]
    assert compare_files({"components": files}, art) == []
    twice = [*files, comp("./w/a.bin", b"other")]
    diffs = compare_files({"components": twice}, art)
    assert any("more than once" in d.reason for d in diffs)


def test_a_bundle_with_two_payloads_does_not_verify(tmp_path, signer_and_verifier) -> None:
    from mlsec.signing.bundle import Bundle

    signer, _verifier = signer_and_verifier
    payload = _statement([("a.bin", _sha(b"a"))])
    text = signer.sign(payload, IN_TOTO_PAYLOAD_TYPE).to_json().decode()
    doc = json.loads(text)
    env = doc["dsseEnvelope"]
    twice = text.replace('"payload": ', f'"payload": {json.dumps(env["payload"])}, "payload": ', 1)
    assert twice != text
    with pytest.raises(
        VerificationError, match=r"ambiguous signed bundle.*duplicate key 'payload'"
    ):
        Bundle.from_json(twice)
