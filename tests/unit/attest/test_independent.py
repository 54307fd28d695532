"""Attestations checked with independent implementations of the published rules: DSSE with
securesystemslib, the in-toto Statement v1 and SLSA provenance v1 with in-toto-attestation's
protobuf bindings (unknown fields refused). None of mlsec's verification code is used."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from tests.unit.attest.test_attest_cli import make_model
from tests.unit.signing.pki import keypair


def sslib_envelope(att: Path) -> Envelope:
    env = json.loads(att.read_bytes())["dsseEnvelope"]
    sig = env["signatures"][0]["sig"]
    return Envelope.from_dict(
        {
            "payload": env["payload"],
            "payloadType": env["payloadType"],
            "signatures": [{"keyid": "k", "sig": sig}],
        }
    )


def sslib_key(pub: Path) -> SSlibKey:
    return SSlibKey.from_crypto(serialization.load_pem_public_key(pub.read_bytes()), keyid="k")


@pytest.mark.parametrize("kind", ["scan", "sbom", "provenance"])
def test_dsse_and_statement_with_independent_implementations(
    cli: Any, tmp_path: Path, kind: str
) -> None:
    key, pub = keypair(tmp_path)
    model = make_model(tmp_path / "model", evil=kind == "scan")
    att = tmp_path / "a.att"
    extra = ["--builder-id", "https://ci.example/b", "--dataset", "hf://d"]
    r = cli("attest", model, "--type", kind, "--key", key, "-o", att,
            *(extra if kind == "provenance" else []))  # fmt: skip
    assert r.exit_code == (1 if kind == "scan" else 0), r.stderr
    env = sslib_envelope(att)
    assert "k" in env.verify([sslib_key(pub)], 1)
    # The statement parses strictly (no field the in-toto v1 schema lacks) and validates.
    payload = base64.b64decode(json.loads(att.read_bytes())["dsseEnvelope"]["payload"])
    pb = json_format.Parse(payload, statement_pb2.Statement())
    Statement.copy_from_pb(pb).validate()
    doc = json.loads(payload)
    if kind == "provenance":
        json_format.ParseDict(doc["predicate"], provenance_pb2.Provenance())
    # A changed payload fails the independent check too.
    tampered = json.loads(att.read_bytes())
    doc["subject"][1]["digest"]["sha256"] = "0" * 64
    tampered["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(doc).encode()).decode()
    att.write_text(json.dumps(tampered))
    with pytest.raises(VerificationError):
        sslib_envelope(att).verify([sslib_key(pub)], 1)
