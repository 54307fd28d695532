# ruff: noqa: F811 - the registry fixtures are imported from tests/unit/registry/conftest.py
"""``mlsec admit REF``: a model judged straight from a real registry, with the signature and
SBOM attached to it as referrers; sealed models opened with an age identity."""

from __future__ import annotations

import json
from pathlib import Path

from mlsec.crypt import generate_identity
from tests.registry_server import Registry
from tests.unit.registry.conftest import registry, registry_cli  # noqa: F401 - fixtures


def _signed(cli, model: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    key = tmp_path / "signer"
    assert cli("keygen", "--output", key, "--no-passphrase").exit_code == 0
    sig, bom = tmp_path / "model.sig", tmp_path / "bom.json"
    assert cli("sign", model, "--key", f"{key}.key", "--output", sig).exit_code == 0
    assert cli("sbom", model, "-o", bom).exit_code == 0
    return key, sig, bom


def test_admit_a_reference_with_attached_signature_and_sbom(
    registry_cli, registry: Registry, example_model: Path, tmp_path: Path
) -> None:
    key, sig, bom = _signed(registry_cli, example_model, tmp_path)
    ref = f"{registry.host}/admit/tiny:v1"
    r = registry_cli("push", example_model, ref, "--signature", sig, "--sbom", bom, "-f", "json")
    assert r.exit_code == 0, r.stderr
    digest = json.loads(r.stdout)["digest"]
    r = registry_cli("admit", ref, "--key", f"{key}.pub", "--policy", "default", "-f", "json")
    assert r.exit_code == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["evidence"]["source"] == {
        "reference": ref,
        "digest": digest,
        "signature": "attached",
        "sbom": "attached",
    }
    checks = {c["rule"]: c for c in doc["checks"]}
    assert checks["signature"]["passed"] and checks["sbom"]["passed"]

    # The same tag now names a different model with nothing attached: denied, with the reason.
    (example_model / "config.json").write_text('{"model_type": "swapped"}')
    assert registry_cli("push", example_model, ref).exit_code == 0
    r = registry_cli("admit", ref, "--key", f"{key}.pub", "-f", "json")
    assert r.exit_code == 1
    checks = {c["rule"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["signature"]["message"] == "a signature is required and none was given"


def test_admit_a_sealed_reference(
    registry_cli, registry: Registry, example_model: Path, tmp_path: Path
) -> None:
    key, sig, _ = _signed(registry_cli, example_model, tmp_path)
    identity, recipient = generate_identity()
    age_key = tmp_path / "age.txt"
    age_key.write_text(identity + "\n")
    ref = f"{registry.host}/admit/sealed:v1"
    r = registry_cli("push", example_model, ref, "--encrypt-to", recipient, "--signature", sig)
    assert r.exit_code == 0, r.stderr
    r = registry_cli("admit", ref, "--key", f"{key}.pub", "--age-identity", age_key)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "ALLOW" in r.stdout
    # Without the identity the sealed layer is all there is: not the signed files.
    r = registry_cli("admit", ref, "--key", f"{key}.pub", "--policy", "permissive", "-f", "json")
    assert r.exit_code == 1
    check = {c["rule"]: c for c in json.loads(r.stdout)["checks"]}["signature"]
    assert not check["passed"]


def test_unknown_reference_is_exit_2(registry_cli, registry: Registry) -> None:
    r = registry_cli("admit", f"{registry.host}/admit/missing:v9")
    assert r.exit_code == 2 and "Traceback" not in r.stderr
