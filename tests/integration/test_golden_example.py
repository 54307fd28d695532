"""The golden bundles that model_signing 1.1.1 wrote once, byte for byte (an extra check).

They are read from where ``MLSEC_SIGNING_EXAMPLE`` points (a copy a developer may have). A user's
clone does not have them, so these tests skip there, saying why; the same properties are covered
at test time by ``test_model_signing_interop.py``, which signs with the real model_signing CLI."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from mlsec.artifact import open_artifact
from tests.unit.signing.pki import GOLDEN as _GOLDEN

pytestmark = pytest.mark.skipif(
    _GOLDEN is None or not (_GOLDEN / "model.sig").is_file(),
    reason="golden model_signing bundles not found: set MLSEC_SIGNING_EXAMPLE to a copy of them "
    f"(now {_GOLDEN}); interop is covered at test time by test_model_signing_interop.py",
)
GOLDEN = _GOLDEN or Path()

ROOT = "1d0ed0d9b4e36b0d521b90383927bdd49a5c893b0724b8976a698f8de6753110"


@pytest.fixture
def golden(tmp_path: Path) -> Path:
    return Path(shutil.copytree(GOLDEN, tmp_path / "golden"))


def test_walk_and_digests_match_golden_statement(golden: Path) -> None:
    sig = json.loads((golden / "model.sig").read_text())
    statement = json.loads(base64.b64decode(sig["dsseEnvelope"]["payload"]))
    art = open_artifact(golden / "model", digests=True)
    signed = [(r["name"], r["digest"]) for r in statement["predicate"]["resources"]]
    assert [(f.path, f.sha256) for f in art.files] == signed
    assert [i.path for i in art.ignored] == [".gitattributes"]
    root = hashlib.sha256(b"".join(bytes.fromhex(f.sha256 or "") for f in art.files))
    assert root.hexdigest() == statement["subject"][0]["digest"]["sha256"] == ROOT


def test_golden_key_bundle_verifies(golden: Path, cli) -> None:
    r = cli(
        "verify", golden / "model", "-s", golden / "model.sig", "--key", golden / "keys/pub.pem",
        "--format", "json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["ok"] is True and doc["root_digest"] == f"sha256:{ROOT}" and doc["files"] == 6


def test_golden_certificate_bundle_verifies(golden: Path, cli) -> None:
    r = cli(
        "verify", golden / "model", "-s", golden / "model.cert.sig",
        "--certificate-chain", golden / "cert/ca-cert.pem",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "mlsec-eval throwaway signer" in r.stdout


def test_golden_tamper_fails(golden: Path, cli) -> None:
    cfg = golden / "model" / "config.json"
    cfg.chmod(0o644)
    cfg.write_text("{}")
    pub = golden / "keys/pub.pem"
    r = cli("verify", golden / "model", "-s", golden / "model.sig", "--key", pub)
    assert r.exit_code == 1
