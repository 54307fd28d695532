# ruff: noqa: F811 - the registry fixtures are imported from tests/unit/registry/conftest.py
"""``mlsec push`` / ``mlsec pull`` end to end against a real docker-registry."""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path

import pytest

from mlsec.artifact import open_artifact
from tests.registry_server import Registry
from tests.unit.registry.conftest import (  # noqa: F401 - pytest fixtures
    PASSWORD,
    USER,
    auth_registry,
    make_model,
    no_docker_config,
    registry,
    registry_cli,
    tree,
)


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if not line.startswith("mlsec: hint:")]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("mlsec: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_push_pull_json_round_trip(registry_cli, registry: Registry, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    ref = f"{registry.host}/cli/tiny:v1"
    r = registry_cli("push", model, ref, "--format", "json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "mlsec/push/v1" and doc["layers"] == 6
    assert doc["digest"].startswith("sha256:") and doc["blobs_skipped"] == 0
    r = registry_cli("pull", ref, tmp_path / "out", "--format", "json")
    assert r.exit_code == 0, r.stderr
    pulled = json.loads(r.stdout)
    assert pulled["schema"] == "mlsec/pull/v1" and pulled["digest"] == doc["digest"]
    assert tree(tmp_path / "out") == tree(model)
    # Table output names what happened; a second push uploads nothing.
    r = registry_cli("push", model, ref)
    assert r.exit_code == 0
    assert f"pushed   {ref}" in r.stdout and "0 B uploaded, 6 blob(s) already there" in r.stdout


def test_push_with_signature_and_sbom_then_pull_with_referrers(
    registry_cli, registry: Registry, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model")
    from tests.unit.signing.pki import keypair

    key, _pub = keypair(tmp_path)
    sig = tmp_path / "model.sig"
    bom = tmp_path / "bom.json"
    # push checks that both describe this model, so they are made for it.
    assert registry_cli("sign", model, "--key", key, "-o", sig).exit_code == 0
    assert registry_cli("sbom", model, "-o", bom).exit_code == 0
    ref = f"{registry.host}/cli/signed:v1"
    r = registry_cli("push", model, ref, "--signature", sig, "--sbom", bom, "--format", "json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    kinds = [x["artifact_type"] for x in doc["referrers"]]
    assert kinds == [
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        "application/vnd.cyclonedx+json",
    ]
    assert {x["fallback_tag"] for x in doc["referrers"]} == {"sha256-" + doc["digest"][7:]}
    dest = tmp_path / "pulled" / "model"
    r = registry_cli("pull", ref, dest, "--with-referrers")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "pulled" / "model.sig").read_bytes() == sig.read_bytes()
    assert (tmp_path / "pulled" / "model.cdx.json").read_bytes() == bom.read_bytes()
    assert tree(dest) == tree(model)


def test_auth_wrong_password_and_missing_credentials(
    registry_cli,
    auth_registry: Registry,
    tmp_path: Path,
    no_docker_config: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = make_model(tmp_path / "model")
    ref = f"{auth_registry.host}/cli/private:v1"
    r = registry_cli("push", model, ref)
    assert r.exit_code == 2
    assert "authentication required" in one_error_line(r.stderr)
    monkeypatch.setenv("MLSEC_REGISTRY_PASSWORD", "not-the-password")
    r = registry_cli("push", model, ref, "--username", USER)
    assert r.exit_code == 2
    line = one_error_line(r.stderr)
    assert f"authentication refused for user '{USER}'" in line
    assert "not-the-password" not in r.stderr + r.stdout
    monkeypatch.setenv("MLSEC_REGISTRY_PASSWORD", PASSWORD)
    r = registry_cli("push", model, ref, "--username", USER)
    assert r.exit_code == 0, r.stderr
    monkeypatch.delenv("MLSEC_REGISTRY_PASSWORD")
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    r = registry_cli("pull", ref, tmp_path / "out", "--username", USER, "--password-stdin")
    assert r.exit_code == 0, r.stderr
    assert tree(tmp_path / "out") == tree(model)


def test_unknown_tag_exits_2(registry_cli, registry: Registry, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    registry_cli("push", model, f"{registry.host}/cli/known:v1")
    r = registry_cli("pull", f"{registry.host}/cli/known:v9", tmp_path / "out")
    assert r.exit_code == 2
    assert "unknown tag 'v9'" in one_error_line(r.stderr)
    assert not (tmp_path / "out").exists()


def test_unreachable_registry_exits_2(registry_cli, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = registry_cli("pull", f"127.0.0.1:{port}/cli/x:v1", tmp_path / "out")
    assert r.exit_code == 2
    assert "cannot reach registry" in one_error_line(r.stderr)


def test_corrupted_blob_exits_2_naming_the_file_and_both_digests(
    registry_cli, registry: Registry, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model")
    ref = f"{registry.host}/cli/corrupt:v1"
    assert registry_cli("push", model, ref).exit_code == 0
    sha = open_artifact(model, digests=True).file("weights/part-0.bin").sha256
    blob = registry.blob_path(f"sha256:{sha}")
    data = bytearray(blob.read_bytes())
    data[7] ^= 0x80
    blob.write_bytes(bytes(data))
    dest = tmp_path / "out"
    r = registry_cli("pull", ref, dest)
    assert r.exit_code == 2
    line = one_error_line(r.stderr)
    assert "weights/part-0.bin: digest mismatch" in line and f"expected sha256:{sha}" in line
    import hashlib

    assert f"got sha256:{hashlib.sha256(data).hexdigest()}" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_pull_refuses_a_non_empty_destination(
    registry_cli, registry: Registry, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model")
    ref = f"{registry.host}/cli/dest:v1"
    assert registry_cli("push", model, ref).exit_code == 0
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    r = registry_cli("pull", ref, dest)
    assert r.exit_code == 2 and "not empty" in one_error_line(r.stderr)
    assert tree(dest) == {"keep.txt": b"mine"}
    assert registry_cli("pull", ref, dest, "--force").exit_code == 0
    assert tree(dest) == tree(model)


def test_layout_reference_and_usage_errors(registry_cli, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    r = registry_cli("push", model, f"oci:{tmp_path / 'layout'}:v1")
    assert r.exit_code == 0, r.stderr
    assert registry_cli("pull", f"oci:{tmp_path / 'layout'}:v1", tmp_path / "o").exit_code == 0
    assert tree(tmp_path / "o") == tree(model)
    r = registry_cli("push", model, "Not A Ref")
    assert r.exit_code == 2 and one_error_line(r.stderr)
    r = registry_cli("push", tmp_path / "missing", f"oci:{tmp_path / 'layout'}:v1")
    assert r.exit_code == 2 and "no such file" in one_error_line(r.stderr)


def test_json_shapes_are_pinned(registry_cli, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    from tests.unit.signing.pki import keypair

    sig = tmp_path / "s.sig"
    key, _pub = keypair(tmp_path)
    assert registry_cli("sign", model, "--key", key, "-o", sig).exit_code == 0
    ref = f"oci:{tmp_path / 'layout'}:v1"
    push_doc = json.loads(registry_cli("push", model, ref, "--signature", sig, "-f", "json").stdout)
    assert list(push_doc) == [
        "schema", "reference", "digest", "layers", "total_bytes", "bytes_uploaded",
        "blobs_skipped", "referrers",
    ]  # fmt: skip
    assert list(push_doc["referrers"][0]) == ["subject", "digest", "artifact_type", "fallback_tag"]
    r = registry_cli("pull", ref, tmp_path / "o", "--with-referrers", "-f", "json")
    pull_doc = json.loads(r.stdout)
    assert list(pull_doc) == [
        "schema", "reference", "digest", "dest", "total_bytes", "files", "referrer_files",
    ]  # fmt: skip
    assert list(pull_doc["files"][0]) == ["path", "size", "sha256"]
    assert pull_doc["referrer_files"] == [str(tmp_path / "o.sig")]


def test_https_unless_loopback_name_or_plain_http(registry_cli, tmp_path: Path) -> None:
    from tests.registry_server import start_registry

    # 127.0.0.2 is a loopback address, but not one mlsec treats as plain-HTTP by default.
    reg = start_registry(tmp_path / "reg", address="127.0.0.2")
    try:
        model = make_model(tmp_path / "model")
        ref = f"{reg.host}/cli/plain:v1"
        r = registry_cli("push", model, ref)
        assert r.exit_code == 2
        line = one_error_line(r.stderr)
        assert f"{reg.host}: cannot reach registry" in line and "SSL" in line.upper()
        assert "mlsec: hint: if this registry speaks plain HTTP, pass --plain-http" in r.stderr
        r = registry_cli("push", model, ref, "--plain-http")
        assert r.exit_code == 0, r.stderr
        r = registry_cli("pull", ref, tmp_path / "out", "--plain-http")
        assert r.exit_code == 0, r.stderr
        assert tree(tmp_path / "out") == tree(model)
    finally:
        reg.stop()


def test_sign_push_pull_verify_end_to_end(
    registry_cli, registry: Registry, tmp_path: Path, example_model: Path, monkeypatch
) -> None:
    """The signature travels as a referrer and still verifies the pulled copy."""
    monkeypatch.setenv("MLSEC_PASSPHRASE", "registry-e2e-passphrase")
    assert registry_cli("keygen", "--output", tmp_path / "signer").exit_code == 0
    sig = tmp_path / "model.sig"
    assert (
        registry_cli("sign", example_model, "--key", tmp_path / "signer.key", "-o", sig).exit_code
        == 0
    )
    ref = f"{registry.host}/cli/e2e:v1"
    assert registry_cli("push", example_model, ref, "--signature", sig).exit_code == 0
    dest = tmp_path / "pulled"
    assert registry_cli("pull", ref, dest, "--with-referrers").exit_code == 0
    r = registry_cli(
        "verify", dest, "--signature", tmp_path / "pulled.sig", "--key", tmp_path / "signer.pub"
    )
    assert r.exit_code == 0, r.stderr
    # A file changed after the pull is caught by verify (the registry path did not weaken it).
    (dest / "config.json").write_text("{}")
    r = registry_cli(
        "verify", dest, "--signature", tmp_path / "pulled.sig", "--key", tmp_path / "signer.pub"
    )
    assert r.exit_code == 1
