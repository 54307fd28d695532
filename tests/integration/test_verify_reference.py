# ruff: noqa: F811 - the registry fixtures are imported from tests/unit/registry/conftest.py
"""``mlsec verify REF``: a signed model in a real docker-registry is verified from its manifest
and the attached signature only. The layer blobs are deleted from the registry's storage first,
so any attempt to read a weight would fail."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.registry_server import Registry
from tests.unit.registry.conftest import (  # noqa: F401 - pytest fixtures
    make_model,
    registry,
    registry_cli,
)


def _signed_push(cli, registry: Registry, tmp_path: Path, name: str):  # type: ignore[no-untyped-def]
    model = make_model(tmp_path / name)
    key = tmp_path / f"{name}-k"
    assert cli("keygen", "-o", key, "--no-passphrase").exit_code == 0
    sig = tmp_path / f"{name}.sig"
    assert cli("sign", model, "--key", f"{key}.key", "-o", sig).exit_code == 0
    ref = f"{registry.host}/remote/{name}:v1"
    r = cli("push", model, ref, "--signature", sig, "--format", "json")
    assert r.exit_code == 0, r.stderr
    return model, key, ref, json.loads(r.stdout)


def test_verify_reference_reads_no_layer(registry_cli, registry: Registry, tmp_path: Path):
    model, key, ref, pushed = _signed_push(registry_cli, registry, tmp_path, "whole")
    # Delete every weight blob from the registry's storage: only manifests and the bundle remain.
    sizes = {}
    for f in sorted(model.rglob("*")):
        if f.is_file() and f.stat().st_size > 100:
            import hashlib

            digest = "sha256:" + hashlib.sha256(f.read_bytes()).hexdigest()
            blob = registry.blob_path(digest)
            if blob.exists():
                sizes[digest] = f.stat().st_size
                shutil.rmtree(blob.parent)
    assert sizes, "the test must have deleted layer blobs"
    r = registry_cli("verify", ref, "--key", f"{key}.pub", "--format", "json")
    assert r.exit_code == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] is True and doc["layers_downloaded"] == 0
    assert doc["manifest_digest"] == pushed["digest"]
    assert doc["bytes_read"] < 64 * 1024  # manifests and one bundle, whatever the model's size
    # A pull now fails (the blobs are gone): verify really did not need them.
    assert registry_cli("pull", ref, tmp_path / "out").exit_code == 2


def test_verify_reference_with_another_key_or_no_signature_fails(
    registry_cli, registry: Registry, tmp_path: Path
):
    _, _, ref, _ = _signed_push(registry_cli, registry, tmp_path, "other")
    stranger = tmp_path / "stranger"
    assert registry_cli("keygen", "-o", stranger, "--no-passphrase").exit_code == 0
    r = registry_cli("verify", ref, "--key", f"{stranger}.pub")
    assert r.exit_code == 1 and "not verified" in r.stderr
    unsigned = make_model(tmp_path / "unsigned")
    uref = f"{registry.host}/remote/unsigned:v1"
    assert registry_cli("push", unsigned, uref).exit_code == 0
    r = registry_cli("verify", uref, "--key", f"{stranger}.pub")
    assert r.exit_code == 1 and "no model signature is attached" in r.stderr
