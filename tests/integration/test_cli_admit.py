"""``mlsec admit`` end to end on real models: real signatures, real SBOMs, a malicious pickle
built from bytes (never loaded), every reason reported, exit codes 0/1/2, JSON shape pinned."""

from __future__ import annotations

import json

import pytest

import mlsec.artifact as artifact

EVIL = b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93\x8c\x04true\x85R."


@pytest.fixture
def signed(cli, example_model, tmp_path):
    """The example model, a key pair, its signature beside it (PATH.sig) and its SBOM."""
    key = tmp_path / "signer"
    assert cli("keygen", "--output", key, "--no-passphrase").exit_code == 0
    assert cli("sign", example_model, "--key", f"{key}.key").exit_code == 0
    bom = tmp_path / "bom.json"
    assert cli("sbom", example_model, "-o", bom).exit_code == 0
    return example_model, key, bom


def test_default_policy_allows_a_signed_clean_model(cli, signed):
    model, key, _ = signed
    r = cli("admit", model, "--key", f"{key}.pub")  # PATH.sig is found beside the model
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "ALLOW" in r.stdout and "verified, signed by public key" in r.stdout


def test_default_policy_denies_unsigned_and_malicious_with_every_reason(cli, example_model):
    (example_model / "training_state.pkl").write_bytes(EVIL)
    r = cli("admit", example_model, "--format", "json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["decision"] == "deny" and doc["allowed"] is False
    reasons = {c["rule"]: c for c in doc["checks"]}
    assert not reasons["scan"]["passed"] and "os.system" in reasons["scan"]["message"]
    assert reasons["signature"]["message"] == "a signature is required and none was given"


def test_tampered_model_is_denied_by_its_signature(cli, signed):
    model, key, _ = signed
    (model / "extra.bin").write_bytes(b"added after signing")
    r = cli("admit", model, "--key", f"{key}.pub", "--policy", "permissive", "-f", "json")
    assert r.exit_code == 1
    check = {c["rule"]: c for c in json.loads(r.stdout)["checks"]}["signature"]
    assert not check["passed"] and "extra.bin" in check["message"]


def test_strict_policy_names_each_failing_rule(cli, signed):
    model, key, bom = signed
    r = cli(
        "admit", model, "--key", f"{key}.pub", "--sbom", bom, "--policy", "strict", "-f", "json"
    )
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    checks = {c["rule"]: c for c in doc["checks"]}
    assert checks["signature"]["passed"] and checks["sbom"]["passed"]
    assert checks["licenses"]["passed"]
    assert checks["formats"]["message"] == "format(s) not allowed: pickle: training_state.pkl"
    assert "vulnerability data is required" in checks["vulnerabilities"]["message"]


def test_sbom_that_does_not_match_is_denied(cli, signed, tmp_path):
    model, _, bom = signed
    (model / "config.json").write_text("{}")
    r = cli("admit", model, "--sbom", bom, "--policy", "permissive", "-f", "json")
    assert r.exit_code == 1
    check = {c["rule"]: c for c in json.loads(r.stdout)["checks"]}["sbom"]
    assert "config.json: changed" in check["message"]


def test_json_shape_is_pinned(cli, signed):
    model, key, bom = signed
    r = cli("admit", model, "--key", f"{key}.pub", "--sbom", bom, "-f", "json")
    doc = json.loads(r.stdout)
    assert set(doc) == {"schema", "decision", "allowed", "policy", "checks", "evidence"}
    assert doc["schema"] == "mlsec/admit/v1"
    ev = doc["evidence"]
    assert ev["schema"] == "mlsec/evidence/v1"
    assert set(ev) == {"schema", "artifact", "scan", "signature", "sbom", "model"}
    assert ev["artifact"]["formats"] == {"json": 2, "pickle": 1, "safetensors": 1, "text": 1}
    assert ev["signature"]["verified"] is True and ev["signature"]["root_digest"].startswith(
        "sha256:"
    )
    assert ev["sbom"]["matches_files"] is True and ev["sbom"]["source"] == "given"
    assert ev["model"]["licenses"] == ["apache-2.0"] and ev["model"]["datasets"] == ["imdb"]


def test_each_file_is_hashed_once_across_capabilities(cli, signed, monkeypatch):
    model, key, bom = signed
    hashed = []
    real = artifact._hash_one

    def counting(path, progress, sniff_it):
        hashed.append(path.name)
        return real(path, progress, sniff_it)

    monkeypatch.setattr(artifact, "_hash_one", counting)
    r = cli("admit", model, "--key", f"{key}.pub", "--sbom", bom)
    assert r.exit_code == 0, r.stdout
    assert sorted(hashed) == sorted(p.name for p in model.iterdir())


def test_policy_trust_material_and_allowlisted_global(cli, signed, tmp_path):
    model, key, _ = signed
    (model / "training_state.pkl").write_bytes(
        b"\x80\x04\x8c\x05mypkg\x94\x8c\x03Net\x94\x93)R."  # mypkg.Net(): medium, not allowlisted
    )
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "apiVersion: mlsec/policy/v1\nscan: {fail_on: medium}\n"
        f"signature: {{required: true, key: {key.name}.pub}}\n"
    )
    r = cli("admit", model, "--policy", policy, "-f", "json")
    checks = {c["rule"]: c for c in json.loads(r.stdout)["checks"]}
    assert r.exit_code == 1 and "mypkg.Net" in checks["scan"]["message"]
    # The model changed after signing, so the signature (trust from the policy file) fails too.
    assert (
        not checks["signature"]["passed"] and "training_state.pkl" in checks["signature"]["message"]
    )
    assert cli("sign", model, "--key", f"{key}.key").exit_code == 0
    policy.write_text(
        "apiVersion: mlsec/policy/v1\nscan: {fail_on: medium, allow_globals: [mypkg.Net]}\n"
        f"signature: {{required: true, key: {key.name}.pub}}\n"
    )
    r = cli("admit", model, "--policy", policy)
    assert r.exit_code == 0, r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policy", "nope"], "cannot read policy"),
        (["--signature", "{model}.sig"], "a signature needs trust material"),
        (["--key", "{tmp}/missing.pub"], "missing.pub"),
    ],
)
def test_operator_errors_are_exit_2(cli, signed, tmp_path, args, message):
    model, _, _ = signed
    r = cli("admit", model, *[a.format(model=model, tmp=tmp_path) for a in args])
    assert r.exit_code == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_a_missing_path_says_so(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("MLSEC_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    r = cli("admit", "no-such-model")
    assert r.exit_code == 2
    assert "no-such-model: no such file or directory, nor a model in the local store" in r.stderr


MAIN_CLASS = b"\x80\x04c__main__\nNet\n)\x81."  # medium: a class from the training script


def test_ignore_file_accepts_a_finding_and_admit_keeps_it_visible(
    cli, signed, tmp_path, monkeypatch
):
    model, key, _ = signed
    (model / "head.pkl").write_bytes(MAIN_CLASS)
    assert cli("sign", model, "--key", f"{key}.key").exit_code == 0  # re-sign with head.pkl
    denied = cli("admit", model, "--key", f"{key}.pub", "--format", "json")
    assert denied.exit_code == 1
    ignore = tmp_path / "accepted.yaml"
    ignore.write_text(
        "findings:\n"
        "  - symbol: __main__.Net\n"
        "    path: head.pkl\n"
        "    reason: our own head class, reviewed in PR 12\n"
    )
    r = cli("admit", model, "--key", f"{key}.pub", "--ignorefile", ignore, "--format", "json")
    assert r.exit_code == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    scan = doc["evidence"]["scan"]
    assert scan["findings"] == []
    [s] = scan["suppressed"]
    assert s["symbol"] == "__main__.Net"
    assert s["suppression"]["reason"] == "our own head class, reviewed in PR 12"
    assert doc["evidence"]["ignore"]["file"] == str(ignore)
    # The default file in the current directory is used the same way.
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".mlsecignore.yaml").write_text(ignore.read_text())
    assert cli("admit", model, "--key", f"{key}.pub").exit_code == 0


def _bom_with_vulnerability(bom_path, out, vuln_id):
    bom = json.loads(bom_path.read_text())
    bom.setdefault("components", []).append(
        {"type": "library", "bom-ref": "pkg:pypi/torch@2.0.0", "name": "torch", "version": "2.0.0"}
    )
    bom["vulnerabilities"] = [
        {
            "id": vuln_id,
            "ratings": [{"severity": "critical"}],
            "references": [{"id": "GHSA-xxxx-yyyy-zzzz", "source": {"name": "GitHub"}}],
            "affects": [{"ref": "pkg:pypi/torch@2.0.0"}],
        }
    ]
    out.write_text(json.dumps(bom))
    return out


def test_ignore_file_accepts_a_vulnerability_by_id_or_alias(cli, signed, tmp_path):
    model, key, bom = signed
    vbom = _bom_with_vulnerability(bom, tmp_path / "vuln.cdx.json", "PYSEC-2024-1")
    base = ("admit", model, "--key", f"{key}.pub", "--sbom", vbom, "--format", "json")
    r = cli(*base)
    assert r.exit_code == 1
    assert "PYSEC-2024-1" in json.dumps(json.loads(r.stdout)["checks"])
    ignore = tmp_path / "ignore.yaml"
    ignore.write_text(
        "vulnerabilities:\n  - id: GHSA-xxxx-yyyy-zzzz\n    reason: not reachable from serving\n"
    )
    r = cli(*base, "--ignorefile", ignore)
    assert r.exit_code == 0, r.stdout
    doc = json.loads(r.stdout)
    [v] = doc["evidence"]["sbom"]["vulnerabilities"]
    assert v["suppressed"]["reason"] == "not reachable from serving"
    check = next(c for c in doc["checks"] if c["rule"] == "vulnerabilities")
    assert check["passed"] and "1 accepted by the ignore file" in check["message"]


def test_expired_ignore_entry_no_longer_applies_in_admit(cli, signed, tmp_path):
    model, key, bom = signed
    vbom = _bom_with_vulnerability(bom, tmp_path / "vuln.cdx.json", "PYSEC-2024-1")
    ignore = tmp_path / "ignore.yaml"
    ignore.write_text(
        "vulnerabilities:\n  - id: PYSEC-2024-1\n    reason: until the fix\n"
        "    expires: 2020-01-01\n"
    )
    r = cli("admit", model, "--key", f"{key}.pub", "--sbom", vbom, "--ignorefile", ignore)
    assert r.exit_code == 1
    assert "expired on 2020-01-01" in r.stderr
