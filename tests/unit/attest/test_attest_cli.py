"""``mlsec attest`` and ``mlsec verify --attestation`` with real keys, end to end in-process."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.unit.signing.pki import keypair, make_pki

# A pickle that would run `touch` if loaded: never loaded here, only scanned.
EVIL_PICKLE = b"cos\nsystem\n(S'touch /tmp/mlsec-attest-pwned'\ntR."


def make_model(root: Path, *, evil: bool = False) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "config.json").write_text('{"model_type": "tiny"}\n')
    (root / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 40)
    (root / "empty.txt").write_bytes(b"")
    if evil:
        (root / "model.pkl").write_bytes(EVIL_PICKLE)
    return root


def envelope(att: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    bundle = json.loads(att.read_bytes())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    return bundle, statement


def resign(att: Path, key_path: Path, statement: dict[str, Any]) -> None:
    """Re-sign an edited statement with a real key, DSSE PAE written out by hand."""
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    bundle = json.loads(att.read_bytes())
    payload = json.dumps(statement).encode()
    ptype = b"application/vnd.in-toto+json"
    pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(payload), payload)
    sig = key.sign(pae, ec.ECDSA(hashes.SHA256()))
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(sig).decode()
    att.write_text(json.dumps(bundle))


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return keypair(tmp_path, "k")


def test_scan_attestation_subjects_and_independent_dsse_check(cli, tmp_path, keys) -> None:
    key, pub = keys
    model = make_model(tmp_path / "model")
    r = cli("attest", model, "--type", "scan", "--key", key, "-f", "json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    att = Path(out["attestation"])
    assert att == tmp_path / "model.scan.att"  # beside the model, not inside it
    bundle, st = envelope(att)
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert st["_type"] == "https://in-toto.io/Statement/v1"
    assert st["predicateType"] == "https://mlsec.dev/attestation/scan/v1"
    # Subject: the model with the same root digest `sign` writes, then each file's SHA-256.
    r = cli("sign", model, "--key", key, "-o", tmp_path / "m.sig", "-f", "json")
    root = json.loads(r.stdout)["root_digest"].removeprefix("sha256:")
    assert st["subject"][0] == {
        "name": "model",
        "digest": {"sha256": root},
        "annotations": {"mlsec.dev/subject": "model"},
    }
    files = {s["name"]: s["digest"]["sha256"] for s in st["subject"][1:]}
    assert files == {
        p.relative_to(model).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in model.rglob("*")
        if p.is_file()
    }
    pred = st["predicate"]
    assert pred["verdict"] == "pass" and pred["threshold"] == "medium"
    assert pred["engine"]["name"] == "mlsec" and pred["ruleset"]["digest"]["sha256"]
    canon = json.dumps(pred["findings"], sort_keys=True, separators=(",", ":")).encode()
    assert pred["findingsDigest"]["sha256"] == hashlib.sha256(canon).hexdigest()
    # Independent DSSE v1 check: PAE written out from the spec, verified with cryptography.
    env = bundle["dsseEnvelope"]
    payload = base64.b64decode(env["payload"])
    ptype = env["payloadType"].encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(payload), payload)
    pubkey = serialization.load_pem_public_key(pub.read_bytes())
    assert isinstance(pubkey, ec.EllipticCurvePublicKey)
    pubkey.verify(base64.b64decode(env["signatures"][0]["sig"]), pae, ec.ECDSA(hashes.SHA256()))
    # And mlsec verifies it.
    r = cli("verify", model, "--attestation", att, "--key", pub, "-f", "json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] and doc["summary"]["verdict"] == "pass" and doc["files"] == 3


def test_failing_scan_is_attested_then_exit_1(cli, tmp_path, keys) -> None:
    key, pub = keys
    model = make_model(tmp_path / "model", evil=True)
    att = tmp_path / "evil.att"
    r = cli("attest", model, "--type", "scan", "--key", key, "-o", att)
    assert r.exit_code == 1
    assert "FAIL" in r.stdout and att.exists()
    _, st = envelope(att)
    pred = st["predicate"]
    assert pred["verdict"] == "fail" and pred["summary"]["findings"]["critical"] >= 1
    assert any(f["file"] == "model.pkl" and f["severity"] == "critical" for f in pred["findings"])
    assert not Path("/tmp/mlsec-attest-pwned").exists()
    # The attestation is genuine: verify succeeds and reports the failing verdict.
    r = cli("verify", model, "--attestation", att, "--key", pub)
    assert r.exit_code == 0, r.stderr
    assert "scan verdict fail" in r.stdout
    # A higher threshold is a passing verdict (recorded as such).
    r = cli("attest", model, "--type", "scan", "--key", key, "-o", att, "--fail-on", "critical")
    assert r.exit_code == 1  # os.system is critical
    r = cli(
        "attest", model, "--type", "scan", "--key", key, "-o", att, "--allow-global", "os.system"
    )
    _, st = envelope(att)
    assert st["predicate"]["options"]["allowGlobals"] == ["os.system"]


def test_tampered_other_model_wrong_key_malformed(cli, tmp_path, keys) -> None:
    key, pub = keys
    model = make_model(tmp_path / "model")
    att = tmp_path / "a.att"
    assert cli("attest", model, "--type", "scan", "--key", key, "-o", att).exit_code == 0
    # Tampered: the payload changed after signing.
    bundle, st = envelope(att)
    st["predicate"]["verdict"] = "fail"
    bad = tmp_path / "tampered.att"
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(st).encode()).decode()
    bad.write_text(json.dumps(bundle))
    r = cli("verify", model, "--attestation", bad, "--key", pub)
    assert r.exit_code == 1 and "signature does not verify" in r.stderr
    # Another model (one file changed): exit 1 naming the file.
    (model / "sub" / "weights.bin").write_bytes(b"other weights")
    r = cli("verify", model, "--attestation", att, "--key", pub, "-f", "json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert not doc["ok"]
    assert {d["path"] for d in doc["differences"]} == {".", "sub/weights.bin"}
    other = make_model(tmp_path / "other")
    (other / "extra.txt").write_text("x")
    r = cli("verify", other, "--attestation", att, "--key", pub)
    assert r.exit_code == 1 and "extra.txt" in r.stdout
    # Another key: exit 1.
    _, pub2 = keypair(tmp_path, "k2")
    model2 = make_model(tmp_path / "model2")
    att2 = tmp_path / "b.att"
    assert cli("attest", model2, "--type", "scan", "--key", key, "-o", att2).exit_code == 0
    r = cli("verify", model2, "--attestation", att2, "--key", pub2)
    assert r.exit_code == 1 and "another key" in r.stderr
    # Malformed: exit 2, one line.
    for content in (b"", b"{}", b"not json", b'{"mediaType": 1}'):
        bad.write_bytes(content)
        r = cli("verify", model2, "--attestation", bad, "--key", pub)
        assert r.exit_code == 2, content
        assert r.stderr.startswith("mlsec: error: ") and "Traceback" not in r.stderr


def test_signed_but_inconsistent_statements_are_refused(cli, tmp_path, keys) -> None:
    key, pub = keys
    model = make_model(tmp_path / "model", evil=True)
    att = tmp_path / "a.att"
    assert cli("attest", model, "--type", "scan", "--key", key, "-o", att).exit_code == 1
    _, original = envelope(att)
    # A verdict that does not follow from the findings, even properly signed, is malformed.
    st = json.loads(json.dumps(original))
    st["predicate"]["verdict"] = "pass"
    resign(att, key, st)
    r = cli("verify", model, "--attestation", att, "--key", pub)
    assert r.exit_code == 2 and "verdict" in r.stderr
    # Findings dropped without updating the digest: malformed.
    st = json.loads(json.dumps(original))
    st["predicate"]["findings"] = []
    resign(att, key, st)
    r = cli("verify", model, "--attestation", att, "--key", pub)
    assert r.exit_code == 2 and "findingsDigest" in r.stderr
    # A file subject whose digest disagrees with the model subject: malformed.
    st = json.loads(json.dumps(original))
    st["subject"][1]["digest"]["sha256"] = "0" * 64
    resign(att, key, st)
    r = cli("verify", model, "--attestation", att, "--key", pub)
    assert r.exit_code == 2 and "does not match its file subjects" in r.stderr
    # The same file listed twice (two spellings): ambiguous, exit 1.
    st = json.loads(json.dumps(original))
    dup = dict(st["subject"][1], name="./" + st["subject"][1]["name"])
    st["subject"].append(dup)
    resign(att, key, st)
    r = cli("verify", model, "--attestation", att, "--key", pub)
    assert r.exit_code == 1 and "ambiguous" in r.stderr


def test_sbom_attestation_given_built_and_refused(cli, tmp_path, keys) -> None:
    key, pub = keys
    model = make_model(tmp_path / "model")
    bom = tmp_path / "bom.json"
    assert cli("sbom", model, "-o", bom).exit_code == 0
    att = tmp_path / "sbom.att"
    r = cli("attest", model, "--type", "sbom", "--sbom", bom, "--key", key, "-o", att)
    assert r.exit_code == 0, r.stderr
    _, st = envelope(att)
    assert st["predicateType"] == "https://cyclonedx.org/bom"
    assert st["predicate"] == json.loads(bom.read_bytes())
    r = cli("verify", model, "--attestation", att, "--key", pub)
    assert r.exit_code == 0 and "CycloneDX" in r.stdout
    # Built now when --sbom is omitted.
    r = cli("attest", model, "--type", "sbom", "--key", key, "-o", att)
    assert r.exit_code == 0, r.stderr
    _, st = envelope(att)
    assert st["predicate"]["bomFormat"] == "CycloneDX"
    # An SBOM of another model is refused before signing.
    other = make_model(tmp_path / "other")
    (other / "config.json").write_text("{}\n")
    bom2 = tmp_path / "bom2.json"
    assert cli("sbom", other, "-o", bom2).exit_code == 0
    att.unlink()
    r = cli("attest", model, "--type", "sbom", "--sbom", bom2, "--key", key, "-o", att)
    assert r.exit_code == 2 and "config.json" in r.stderr and not att.exists()


def test_provenance_from_flags_and_from_file(cli, tmp_path, keys) -> None:
    key, pub = keys
    model = make_model(tmp_path / "model")
    att = tmp_path / "prov.att"
    digest = "ab" * 32
    r = cli(
        "attest", model, "--type", "provenance", "--key", key, "-o", att,
        "--builder-id", "https://ci.example/train",
        "--source", "git+https://example.org/train.git@v1",
        "--dataset", "hf://datasets/org/data", "--dataset", f"s3://b/d@sha256:{digest}",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    _, st = envelope(att)
    assert st["predicateType"] == "https://slsa.dev/provenance/v1"
    pred = st["predicate"]
    assert pred["runDetails"]["builder"]["id"] == "https://ci.example/train"
    deps = pred["buildDefinition"]["resolvedDependencies"]
    assert deps[0] == {"uri": "git+https://example.org/train.git@v1"}
    assert deps[2] == {"uri": "s3://b/d", "digest": {"sha256": digest}}
    r = cli("verify", model, "--attestation", att, "--key", pub, "-f", "json")
    assert r.exit_code == 0
    assert json.loads(r.stdout)["summary"]["builder"] == "https://ci.example/train"
    # From a predicate file.
    pfile = tmp_path / "slsa.json"
    pfile.write_text(json.dumps(pred))
    r = cli("attest", model, "--type", "provenance", "--predicate", pfile, "--key", key, "-o", att)
    assert r.exit_code == 0, r.stderr
    assert envelope(att)[1]["predicate"] == pred
    # Bad inputs: exit 2 with one line.
    for bad in ({"buildDefinition": {}}, {"_type": "x", "predicate": {}}, [1]):
        pfile.write_text(json.dumps(bad))
        r = cli("attest", model, "--type", "provenance", "--predicate", pfile, "--key", key)
        assert r.exit_code == 2, bad
    pfile.write_text("[" * 10_000)
    r = cli("attest", model, "--type", "provenance", "--predicate", pfile, "--key", key)
    assert r.exit_code == 2 and "nested deeper" in r.stderr
    r = cli("attest", model, "--type", "provenance", "--key", key)
    assert r.exit_code == 2 and "--builder-id" in r.stderr
    r = cli("attest", model, "--type", "scan", "--key", key, "--builder-id", "x")
    assert r.exit_code == 2 and "applies to --type provenance" in r.stderr


def test_single_file_model_and_attestation_inside_model(cli, tmp_path, keys) -> None:
    key, pub = keys
    f = tmp_path / "weights.bin"
    f.write_bytes(b"\x00" * 1000)
    r = cli("attest", f, "--type", "scan", "--key", key, "-f", "json")
    assert r.exit_code == 0, r.stderr
    att = Path(json.loads(r.stdout)["attestation"])
    _, st = envelope(att)
    assert [s["name"] for s in st["subject"]] == ["weights.bin", "weights.bin"]
    assert st["subject"][1]["digest"]["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert cli("verify", f, "--attestation", att, "--key", pub).exit_code == 0
    # An attestation written inside the model leaves itself out of the subjects.
    model = make_model(tmp_path / "model")
    inner = model / "scan.att"
    assert cli("attest", model, "--type", "scan", "--key", key, "-o", inner).exit_code == 0
    _, st = envelope(inner)
    assert "scan.att" not in {s["name"] for s in st["subject"]}
    assert cli("verify", model, "--attestation", inner, "--key", pub).exit_code == 0


def test_certificate_method(cli, tmp_path) -> None:
    pki = make_pki(tmp_path / "pki")
    model = make_model(tmp_path / "model")
    att = tmp_path / "c.att"
    r = cli(
        "attest", model, "--type", "provenance", "--builder-id", "https://ci.example/b",
        "--method", "certificate", "--key", pki.leaf_key,
        "--signing-certificate", pki.leaf_cert, "--certificate-chain", pki.int_cert,
        "-o", att,
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    r = cli("verify", model, "--attestation", att, "--certificate-chain", pki.ca_cert)
    assert r.exit_code == 0, r.stderr


def test_verify_attestation_flag_conflicts(cli, tmp_path, keys) -> None:
    _, pub = keys
    model = make_model(tmp_path / "model")
    r = cli("verify", model, "--attestation", tmp_path / "a", "--signature", tmp_path / "s",
            "--key", pub)  # fmt: skip
    assert r.exit_code == 2 and "--attestation excludes" in r.stderr
    r = cli("verify", model, "--attestation", tmp_path / "missing.att", "--key", pub)
    assert r.exit_code == 2 and "no such file" in r.stderr


def test_json_shapes_are_pinned(cli, tmp_path, keys) -> None:
    key, pub = keys
    model = make_model(tmp_path / "model")
    r = cli("attest", model, "--type", "scan", "--key", key, "-f", "json")
    doc = json.loads(r.stdout)
    assert doc["schema"] == "mlsec/attest/v1"
    assert set(doc) == {
        "schema", "model", "attestation", "type", "predicate_type", "method", "root_digest",
        "files", "summary",
    }  # fmt: skip
    assert doc["files"] == 3 and doc["root_digest"].startswith("sha256:")
    r = cli("verify", model, "--attestation", doc["attestation"], "--key", pub, "-f", "json")
    out = json.loads(r.stdout)
    assert set(out) == {
        "schema", "ok", "model", "method", "signer", "predicate_type", "root_digest", "files",
        "summary", "differences",
    }  # fmt: skip
    assert out["schema"] == "mlsec/verify-attestation/v1"
    r = cli("attest", "hf://org/name", "--type", "scan", "--key", key)
    assert r.exit_code == 2 and "-o FILE" in r.stderr


def test_symlinks_are_neither_attested_nor_ignored(cli, tmp_path, keys) -> None:
    key, pub = keys
    model = make_model(tmp_path / "model")
    att = tmp_path / "a.att"
    (model / "link.bin").symlink_to(model / "sub" / "weights.bin")
    r = cli("attest", model, "--type", "scan", "--key", key, "-o", att)
    assert r.exit_code == 2 and "link.bin: is a symlink" in r.stderr and not att.exists()
    (model / "link.bin").unlink()
    assert cli("attest", model, "--type", "scan", "--key", key, "-o", att).exit_code == 0
    # A symlink added afterwards is a difference, not a silently skipped path.
    (model / "extra.bin").symlink_to(model / "sub" / "weights.bin")
    r = cli("verify", model, "--attestation", att, "--key", pub)
    assert r.exit_code == 1 and "extra.bin" in r.stdout and "symlink" in r.stdout
    # One leaving the model makes it unverifiable (exit 2), as for `verify`.
    (model / "extra.bin").unlink()
    outside = tmp_path / "payload.pkl"
    outside.write_bytes(EVIL_PICKLE)
    (model / "extra.pkl").symlink_to(outside)
    r = cli("verify", model, "--attestation", att, "--key", pub)
    assert r.exit_code == 2 and "extra.pkl: symlink points outside" in r.stderr


def test_ignore_file_suppressions_are_part_of_the_signed_verdict(cli, tmp_path, keys) -> None:
    key, pub = keys
    model = make_model(tmp_path / "model", evil=True)
    ignore = tmp_path / "accepted.yaml"
    ignore.write_text(
        "findings:\n"
        "  - symbol: os.system\n"
        "    path: model.pkl\n"
        "    reason: a reviewed test fixture\n"
    )
    att = tmp_path / "a.att"
    r = cli("attest", model, "--type", "scan", "--key", key, "-o", att, "--ignorefile", ignore)
    assert r.exit_code == 0, r.stderr
    pred = envelope(att)[1]["predicate"]
    assert pred["verdict"] == "pass" and pred["findings"] == []
    assert pred["summary"]["suppressed"] == 1
    [s] = pred["suppressed"]
    assert s["symbol"] == "os.system" and s["suppression"]["reason"] == "a reviewed test fixture"
    assert cli("verify", model, "--attestation", att, "--key", pub).exit_code == 0
