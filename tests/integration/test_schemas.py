"""One contract test per JSON schema: every kind in mlsec.schemas.Schema is produced by its
command, with ``schema`` as the first key (the envelope), and no command invents another kind."""

from __future__ import annotations

import json
from pathlib import Path

from mlsec.schemas import Schema, envelope


def _doc(r) -> dict:  # type: ignore[no-untyped-def]
    assert r.exit_code in (0, 1), r.stderr
    doc = json.loads(r.stdout)
    assert next(iter(doc)) == "schema", "the schema key comes first"
    return doc


def test_every_schema_is_produced_by_its_command(cli, example_model: Path, tmp_path: Path):
    seen: dict[Schema, dict] = {}
    key = tmp_path / "k"
    seen[Schema.KEYGEN] = _doc(cli("keygen", "-o", key, "--no-passphrase", "--format", "json"))
    seen[Schema.INSPECT] = _doc(cli("inspect", example_model, "--format", "json"))
    seen[Schema.SCAN] = _doc(cli("scan", example_model, "--format", "json"))
    seen[Schema.SIGN] = _doc(cli("sign", example_model, "--key", f"{key}.key", "-f", "json"))
    seen[Schema.VERIFY] = _doc(cli("verify", example_model, "--key", f"{key}.pub", "-f", "json"))
    att = tmp_path / "scan.att"
    r = cli(
        "attest", example_model, "--type", "scan", "--key", f"{key}.key", "-o", att, "-f", "json"
    )
    seen[Schema.ATTEST] = _doc(r)
    r = cli("verify", example_model, "--attestation", att, "--key", f"{key}.pub", "-f", "json")
    seen[Schema.VERIFY_ATTESTATION] = _doc(r)
    layout = f"oci:{tmp_path / 'layout'}:v1"
    seen[Schema.PUSH] = _doc(cli("push", example_model, layout, "--format", "json"))
    seen[Schema.PULL] = _doc(cli("pull", layout, tmp_path / "pulled", "--format", "json"))
    admit = _doc(cli("admit", example_model, "--key", f"{key}.pub", "--format", "json"))
    seen[Schema.ADMIT] = admit
    seen[Schema.EVIDENCE] = admit["evidence"]
    assert set(seen) == set(Schema), f"no contract test for {set(Schema) - set(seen)}"
    for kind, doc in seen.items():
        assert doc["schema"] == kind.value


def test_envelope_puts_schema_first_and_replaces_a_stale_one():
    doc = envelope(Schema.SCAN, {"targets": [], "schema": "other"})
    assert list(doc) == ["schema", "targets"] and doc["schema"] == "mlsec/scan/v1"
    assert json.dumps(Schema.SCAN) == '"mlsec/scan/v1"'
