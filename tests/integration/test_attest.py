# ruff: noqa: F811 - the registry fixtures are imported from tests/unit/registry/conftest.py
"""Attestations through a real docker-registry and an OCI layout: attest → push --attach → pull
--with-referrers → verify, with real keys; the model signature still verifies with
``model_signing`` when attestations are attached beside it."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

from tests.registry_server import Registry
from tests.unit.registry.conftest import (  # noqa: F401 - pytest fixtures
    make_model,
    registry,
    registry_cli,
    tree,
)
from tests.unit.signing.pki import keypair

KINDS = ("scan", "sbom", "provenance")
BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def attest_all(cli, model: Path, key: Path, d: Path) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    out = {}
    for kind in KINDS:
        att = d / f"{model.name}-{kind}.att"
        extra = ["--builder-id", "https://ci.example/train"] if kind == "provenance" else []
        r = cli("attest", model, "--type", kind, "--key", key, "-o", att, *extra)
        assert r.exit_code == 0, r.stderr
        out[kind] = att
    return out


def test_attest_push_pull_verify_registry(registry_cli, registry: Registry, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    key, pub = keypair(tmp_path)
    sig = tmp_path / "model.sig"
    assert registry_cli("sign", model, "--key", key, "-o", sig).exit_code == 0
    atts = attest_all(registry_cli, model, key, tmp_path)
    ref = f"{registry.host}/attest/tiny:v1"
    args = [a for kind in KINDS for a in ("--attach", atts[kind])]
    r = registry_cli("push", model, ref, "--signature", sig, *args, "--format", "json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [x["artifact_type"] for x in doc["referrers"]] == [BUNDLE_TYPE] * 4
    # The referrers index (tag-schema fallback on docker-registry 2.8) names each predicate.
    tag = "sha256-" + doc["digest"][7:]
    req = urllib.request.Request(
        f"http://{registry.host}/v2/attest/tiny/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.index.v1+json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        index = json.loads(resp.read())
    notes = [m.get("annotations", {}).get("dev.mlsec.predicate-type") for m in index["manifests"]]
    assert notes == [
        None,
        "https://mlsec.dev/attestation/scan/v1",
        "https://cyclonedx.org/bom",
        "https://slsa.dev/provenance/v1",
    ]
    # The file subjects are the layer digests: the manifest alone can be checked against them.
    _, st = decode(atts["scan"])
    req = urllib.request.Request(
        f"http://{registry.host}/v2/attest/tiny/manifests/v1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        manifest = json.loads(resp.read())
    layers = {
        x["annotations"]["org.opencontainers.image.title"]: x["digest"] for x in manifest["layers"]
    }
    assert {s["name"]: "sha256:" + s["digest"]["sha256"] for s in st["subject"][1:]} == layers
    from mlsec.attest import Statement, compare_digests

    parsed = Statement.parse(json.dumps(st).encode())
    by_title = {t: d.removeprefix("sha256:") for t, d in layers.items()}
    assert compare_digests(parsed, by_title) == []
    by_title["config.json"] = "0" * 64
    assert [d.path for d in compare_digests(parsed, by_title)] == [".", "config.json"]
    # Pull brings every referrer back under its own name; each verifies on the pulled model.
    dest = tmp_path / "pulled" / "model"
    r = registry_cli("pull", ref, dest, "--with-referrers")
    assert r.exit_code == 0, r.stderr
    assert tree(dest) == tree(model)
    assert (tmp_path / "pulled" / "model.sig").read_bytes() == sig.read_bytes()
    for kind in KINDS:
        pulled = tmp_path / "pulled" / f"model.{kind}.att"
        assert pulled.read_bytes() == atts[kind].read_bytes()
        r = registry_cli("verify", dest, "--attestation", pulled, "--key", pub)
        assert r.exit_code == 0, r.stderr
    assert registry_cli("verify", dest, "--key", pub).exit_code == 0  # DEST.sig by default
    # Interop: model_signing verifies the model signature pulled beside the attestations.
    ms = shutil.which("model_signing") or "model_signing"
    proc = subprocess.run(
        [ms, "verify", "key", "--public_key", str(pub), "--signature",
         str(tmp_path / "pulled" / "model.sig"), str(dest)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def decode(att: Path) -> tuple[dict, dict]:  # type: ignore[type-arg]
    bundle = json.loads(att.read_bytes())
    return bundle, json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))


def test_push_refuses_attestations_not_about_this_model(
    registry_cli, registry: Registry, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model")
    other = make_model(tmp_path / "other")
    key, _ = keypair(tmp_path)
    foreign = attest_all(registry_cli, other, key, tmp_path)["scan"]
    ref = f"{registry.host}/attest/refused:v1"
    r = registry_cli("push", model, ref, "--attach", foreign)
    assert r.exit_code == 2
    assert "not about" in r.stderr and "Traceback" not in r.stderr
    # Nothing was uploaded: the tag does not exist.
    r = registry_cli("pull", ref, tmp_path / "out")
    assert r.exit_code == 2 and "unknown" in r.stderr
    # Not a bundle at all, or a private key: refused too.
    bom = tmp_path / "bom.json"
    assert registry_cli("sbom", model, "-o", bom).exit_code == 0
    r = registry_cli("push", model, ref, "--attach", bom)
    assert r.exit_code == 2 and "not an attestation bundle" in r.stderr
    r = registry_cli("push", model, ref, "--attach", key)
    assert r.exit_code == 2 and "private key" in r.stderr
    # A tampered file list (another model's subjects grafted in) is refused as well.
    own = attest_all(registry_cli, model, key, tmp_path)["sbom"]
    (model / "config.json").write_text("{}\n")
    r = registry_cli("push", model, ref, "--attach", own)
    assert r.exit_code == 2 and "config.json" in r.stderr


def test_attach_to_oci_layout_and_pull(registry_cli, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    key, pub = keypair(tmp_path)
    atts = attest_all(registry_cli, model, key, tmp_path)
    ref = f"oci:{tmp_path / 'layout'}:v1"
    r = registry_cli("push", model, ref, "--attach", atts["provenance"], "--attach", atts["scan"])
    assert r.exit_code == 0, r.stderr
    dest = tmp_path / "pulled"
    r = registry_cli("pull", ref, dest, "--with-referrers", "--format", "json")
    assert r.exit_code == 0, r.stderr
    written = sorted(Path(p).name for p in json.loads(r.stdout)["referrer_files"])
    assert written == ["pulled.provenance.att", "pulled.scan.att"]
    r = registry_cli("verify", dest, "--attestation", tmp_path / "pulled.scan.att", "--key", pub)
    assert r.exit_code == 0, r.stderr
