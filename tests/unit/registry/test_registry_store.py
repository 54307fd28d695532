"""push/pull/attach against a real docker-registry (distribution 2.8): no mocks."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlsec.errors import RegistryError
from mlsec.progress import NULL_PROGRESS
from mlsec.registry import (
    SBOM_ARTIFACT_TYPE,
    SIGNATURE_ARTIFACT_TYPE,
    Credentials,
    Descriptor,
    Manifest,
    NotFoundError,
    RegistryStore,
    attach,
    open_store,
    pull,
    push,
    referrers,
)
from mlsec.registry.oci import EMPTY_CONFIG, EMPTY_JSON, FILE_MEDIA_TYPE, TITLE, digest_bytes
from tests.registry_server import Registry
from tests.unit.registry.conftest import PASSWORD, USER, make_model, tree

REPO = Path(__file__).resolve().parents[3]


def test_round_trip_directory(registry: Registry, model_dir: Path, tmp_path: Path) -> None:
    ref = f"{registry.host}/models/tiny:v1"
    res = push(model_dir, ref)
    assert res.layers == 6 and res.total_bytes == sum(len(b) for b in tree(model_dir).values())
    out = pull(ref, tmp_path / "out")
    assert tree(tmp_path / "out") == tree(model_dir)
    assert out.digest == res.digest
    # What the registry holds is the manifest we built, byte for byte, with ORAS-style titles.
    data, media_type = RegistryStore(registry.url, "models/tiny").fetch_manifest("v1")
    assert digest_bytes(data) == res.digest
    assert media_type == "application/vnd.oci.image.manifest.v1+json"
    m = Manifest.parse(data)
    assert m.artifact_type == "application/vnd.mlsec.model.v1"
    assert m.config == EMPTY_CONFIG
    assert {layer.title for layer in m.layers} == set(tree(model_dir))
    assert all(layer.media_type == FILE_MEDIA_TYPE for layer in m.layers)
    # ... and it can be pulled by digest too.
    pull(f"{registry.host}/models/tiny@{res.digest}", tmp_path / "by-digest")
    assert tree(tmp_path / "by-digest") == tree(model_dir)


def test_single_file_model(registry: Registry, tmp_path: Path) -> None:
    f = tmp_path / "model.onnx"
    f.write_bytes(os.urandom(70_000))
    push(f, f"{registry.host}/models/single:v1")
    pull(f"{registry.host}/models/single:v1", tmp_path / "out")
    assert tree(tmp_path / "out") == {"model.onnx": f.read_bytes()}


def test_second_push_skips_every_blob(registry: Registry, model_dir: Path) -> None:
    ref = f"{registry.host}/models/twice:v1"
    first = push(model_dir, ref)
    assert (
        first.blobs_skipped == 0 and first.bytes_uploaded == first.total_bytes - 5_016 + 2
    )  # a duplicate; the config
    second = push(model_dir, ref)
    assert second.blobs_skipped == 6 and second.bytes_uploaded == 0
    assert second.digest != "" and second.layers == 6


def test_chunked_upload_round_trip(registry: Registry, tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "big.bin").write_bytes(os.urandom(2_500_000))
    store = RegistryStore(registry.url, "models/chunked", chunk_size=1_000_000, monolithic_max=0)
    try:
        res = push(model, f"{registry.host}/models/chunked:v1", store=store)
    finally:
        store.close()
    assert res.bytes_uploaded == 2_500_002
    pull(f"{registry.host}/models/chunked:v1", tmp_path / "out")
    assert tree(tmp_path / "out") == tree(model)


def test_unknown_tag_and_repository(registry: Registry, model_dir: Path, tmp_path: Path) -> None:
    push(model_dir, f"{registry.host}/models/known:v1")
    with pytest.raises(NotFoundError, match="unknown tag 'nope'"):
        pull(f"{registry.host}/models/known:nope", tmp_path / "out")
    with pytest.raises(NotFoundError):
        pull(f"{registry.host}/models/never-pushed:v1", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unreachable_registry(tmp_path: Path, model_dir: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RegistryError, match=f"127.0.0.1:{port}: cannot reach registry"):
        push(model_dir, f"127.0.0.1:{port}/models/x:v1")


def test_corrupted_blob_on_registry_disk(
    registry: Registry, model_dir: Path, tmp_path: Path
) -> None:
    from mlsec.artifact import open_artifact

    ref = f"{registry.host}/models/corrupt:v1"
    push(model_dir, ref)
    sha = open_artifact(model_dir, digests=True).file("weights/part-0.bin").sha256
    blob = registry.blob_path(f"sha256:{sha}")
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    try:
        with pytest.raises(RegistryError) as info:
            pull(ref, tmp_path / "out")
        msg = info.value.message
        assert msg.startswith("weights/part-0.bin: digest mismatch: expected sha256:" + str(sha))
        assert msg.endswith(digest_bytes(bytes(data)))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no output, no temp dir
    finally:
        data[len(data) // 2] ^= 0x01
        blob.write_bytes(bytes(data))


def _raw_manifest_put(registry: Registry, repo: str, tag: str, manifest: dict) -> int:
    conn = http.client.HTTPConnection(registry.host)
    body = json.dumps(manifest).encode()
    conn.request(
        "PUT",
        f"/v2/{repo}/manifests/{tag}",
        body=body,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    status = conn.getresponse().status
    conn.close()
    return status


@pytest.mark.parametrize("title", ["../escape.txt", "/etc/evil", "ok/../../escape"])
def test_manifest_with_unsafe_title_is_refused(
    registry: Registry, tmp_path: Path, title: str
) -> None:
    payload = b"owned\n"
    store = RegistryStore(registry.url, "models/evil")
    blob = Descriptor(FILE_MEDIA_TYPE, digest_bytes(payload), len(payload), {TITLE: title})
    store.push_blob(blob, payload, NULL_PROGRESS)
    store.push_blob(EMPTY_CONFIG, EMPTY_JSON, NULL_PROGRESS)
    store.close()
    manifest = json.loads(
        Manifest(EMPTY_CONFIG, (blob,), "application/vnd.mlsec.model.v1").to_bytes()
    )
    assert _raw_manifest_put(registry, "models/evil", "v1", manifest) == 201
    dest = tmp_path / "sub" / "out"
    with pytest.raises(RegistryError, match="unsafe file path"):
        pull(f"{registry.host}/models/evil:v1", dest)
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "sub").exists()


def test_malformed_manifest_is_refused(registry: Registry, tmp_path: Path) -> None:
    store = RegistryStore(registry.url, "models/malformed")
    store.push_blob(EMPTY_CONFIG, EMPTY_JSON, NULL_PROGRESS)
    store.close()
    bad = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": EMPTY_CONFIG.to_dict(),
        "layers": [{"mediaType": FILE_MEDIA_TYPE, "digest": EMPTY_CONFIG.digest, "size": -5}],
    }
    assert _raw_manifest_put(registry, "models/malformed", "v1", bad) == 201
    with pytest.raises(RegistryError, match="size is not a non-negative integer"):
        pull(f"{registry.host}/models/malformed:v1", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_referrers_via_tag_fallback(registry: Registry, model_dir: Path, tmp_path: Path) -> None:
    ref = f"{registry.host}/models/signed:v1"
    res = push(model_dir, ref)
    sig = tmp_path / "model.sig"
    sig.write_text('{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}\n')
    bom = tmp_path / "bom.cdx.json"
    bom.write_text('{"bomFormat": "CycloneDX", "specVersion": "1.6"}\n')
    a = attach(ref, sig, SIGNATURE_ARTIFACT_TYPE)
    b = attach(ref, bom, SBOM_ARTIFACT_TYPE)
    # docker-registry 2.8 has no referrers API: the sha256-<hex> tag holds an image index.
    tag = "sha256-" + res.digest[7:]
    assert a.fallback_tag == b.fallback_tag == tag
    store = RegistryStore(registry.url, "models/signed")
    assert store.referrers(res.digest) is None
    data, media_type = store.fetch_manifest(tag)
    store.close()
    index = json.loads(data)
    assert media_type == "application/vnd.oci.image.index.v1+json"
    assert [(m["digest"], m["artifactType"]) for m in index["manifests"]] == [
        (a.digest, SIGNATURE_ARTIFACT_TYPE),
        (b.digest, SBOM_ARTIFACT_TYPE),
    ]
    # Each referrer manifest points at the model through subject.
    store = RegistryStore(registry.url, "models/signed")
    sig_manifest = Manifest.parse(store.fetch_manifest(a.digest)[0])
    store.close()
    assert sig_manifest.subject is not None and sig_manifest.subject.digest == res.digest
    assert {r.artifact_type for r in referrers(ref)} == {
        SIGNATURE_ARTIFACT_TYPE,
        SBOM_ARTIFACT_TYPE,
    }
    out = pull(ref, tmp_path / "out", with_referrers=True)
    assert (tmp_path / "out.sig").read_bytes() == sig.read_bytes()
    assert (tmp_path / "out.cdx.json").read_bytes() == bom.read_bytes()
    assert len(out.referrer_files) == 2


def test_auth_required_refused_and_accepted(
    auth_registry: Registry, model_dir: Path, tmp_path: Path, no_docker_config: Path
) -> None:
    ref = f"{auth_registry.host}/models/private:v1"
    with pytest.raises(RegistryError, match="authentication required"):
        push(model_dir, ref)
    wrong = open_store(ref, credentials=Credentials(USER, "wrong"))
    with pytest.raises(RegistryError, match=f"authentication refused for user '{USER}'"):
        push(model_dir, ref, store=wrong)
    good = open_store(ref, credentials=Credentials(USER, PASSWORD))
    assert isinstance(good, RegistryStore)
    res = push(model_dir, ref, store=good)
    assert res.blobs_skipped == 0
    pull(ref, tmp_path / "out", store=good)
    good.close()
    assert tree(tmp_path / "out") == tree(model_dir)
    # Credentials are sent from the first request after the challenge: the only 401 is the ping,
    # and no request is sent twice (oras-py sends each one without, then with, credentials).
    assert good.unauthorized == 1
    # 2 pings + 6 blobs x (HEAD, POST, PUT) + manifest PUT; manifest GET + 5 distinct blob GETs
    assert good.responses == 2 + 6 * 3 + 1 + 1 + 5
    assert "wrong" not in repr(wrong.__dict__) or "redacted" in repr(Credentials(USER, "wrong"))


def test_docker_config_auths_are_used(
    auth_registry: Registry, model_dir: Path, tmp_path: Path, no_docker_config: Path
) -> None:
    import base64

    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (no_docker_config / "config.json").write_text(
        json.dumps({"auths": {auth_registry.host: {"auth": token}}})
    )
    ref = f"{auth_registry.host}/models/from-docker-config:v1"
    push(model_dir, ref)
    pull(ref, tmp_path / "out")
    assert tree(tmp_path / "out") == tree(model_dir)


def _helper(bin_dir: Path, name: str, body: str) -> None:
    """A credential helper program: the protocol is ``PROG get`` with the host on stdin. It
    stands in for a desktop keychain, which cannot exist here."""
    bin_dir.mkdir(exist_ok=True)
    prog = bin_dir / f"docker-credential-{name}"
    prog.write_text("#!/bin/sh\n" + body)
    prog.chmod(0o755)


def test_docker_credential_helpers(
    auth_registry: Registry,
    model_dir: Path,
    tmp_path: Path,
    no_docker_config: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bin_dir = tmp_path / "bin"
    seen = tmp_path / "asked-for"
    answer = json.dumps({"ServerURL": "x", "Username": USER, "Secret": PASSWORD})
    _helper(bin_dir, "good", f"cat > {seen}\necho '{answer}'\n")
    _helper(bin_dir, "empty", "echo 'credentials not found in native keychain'; exit 1\n")
    _helper(bin_dir, "token", 'echo \'{"Username": "<token>", "Secret": "refresh"}\'\n')
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    config = no_docker_config / "config.json"
    ref = f"{auth_registry.host}/models/from-helper:v1"

    # credHelpers for this host wins over credsStore.
    config.write_text(
        json.dumps({"credsStore": "empty", "credHelpers": {auth_registry.host: "good"}})
    )
    push(model_dir, ref)
    assert seen.read_text() == auth_registry.host
    pull(ref, tmp_path / "out")
    assert tree(tmp_path / "out") == tree(model_dir)

    # A store with nothing for the host: no credentials, so the registry refuses.
    config.write_text(json.dumps({"credsStore": "empty"}))
    with pytest.raises(RegistryError, match="authentication"):
        push(model_dir, ref)

    config.write_text(json.dumps({"credsStore": "token"}))
    with pytest.raises(RegistryError, match="does not support identity tokens"):
        push(model_dir, ref)

    config.write_text(json.dumps({"credsStore": "missing-helper"}))
    with pytest.raises(RegistryError, match=r"docker-credential-missing-helper .* is not on PATH"):
        push(model_dir, ref)


def test_large_blob_push_and_pull_with_bounded_memory(registry: Registry, tmp_path: Path) -> None:
    """64 MiB through chunked PATCH uploads and a verified pull: peak RSS grows far less."""
    big = tmp_path / "model" / "weights.bin"
    big.parent.mkdir()
    with open(big, "wb") as f:  # sparse except for a few random stretches
        for off in (0, 20 << 20, 63 << 20):
            f.seek(off)
            f.write(os.urandom(1 << 20))
        f.truncate(64 << 20)
    script = textwrap.dedent(
        f"""
        import json, resource, sys
        from mlsec.registry import RegistryStore, pull, push
        def rss():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        before = rss()
        store = RegistryStore("{registry.url}", "models/large", chunk_size=16 << 20,
                              monolithic_max=8 << 20)
        res = push({str(big.parent)!r}, "{registry.host}/models/large:v1", store=store)
        after_push = rss()
        pull("{registry.host}/models/large:v1", {str(tmp_path / "out")!r}, store=store)
        print(json.dumps({{"before": before, "push": after_push, "pull": rss(),
                          "uploaded": res.bytes_uploaded}}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["uploaded"] == (64 << 20) + 2  # and the 2-byte empty config
    assert got["push"] - got["before"] < 24 << 20, got
    assert got["pull"] - got["before"] < 24 << 20, got
    out = tmp_path / "out" / "weights.bin"
    assert out.stat().st_size == 64 << 20
    with open(out, "rb") as a, open(big, "rb") as b:
        while chunk := a.read(1 << 22):
            assert chunk == b.read(1 << 22)


def test_bearer_token_flow(
    token_registry: tuple[Registry, object], model_dir: Path, tmp_path: Path, no_docker_config: Path
) -> None:
    from tests.registry_server import TokenServer

    reg, tokens = token_registry
    assert isinstance(tokens, TokenServer)
    ref = f"{reg.host}/models/bearer:v1"
    with pytest.raises(RegistryError, match="authentication required"):
        push(model_dir, ref)
    with pytest.raises(RegistryError, match=f"authentication refused for user '{USER}'"):
        push(model_dir, ref, store=open_store(ref, credentials=Credentials(USER, "bad")))
    tokens.requests.clear()
    store = open_store(ref, credentials=Credentials(USER, PASSWORD))
    res = push(model_dir, ref, store=store)
    pull(ref, tmp_path / "out", store=store)
    store.close()
    assert tree(tmp_path / "out") == tree(model_dir) and res.layers == 6
    # One token for the whole push and pull, for exactly this repository, pull and push.
    assert tokens.requests == [("repository:models/bearer:pull,push", "granted")]
    # A pull-only session asks for pull only.
    tokens.requests.clear()
    pull(ref, tmp_path / "out2", store=open_store(ref, credentials=Credentials(USER, PASSWORD)))
    assert tokens.requests == [("repository:models/bearer:pull", "granted")]


def test_file_changed_after_hashing_is_refused_by_the_registry(
    registry: Registry, tmp_path: Path
) -> None:
    from mlsec.artifact import open_artifact

    model = make_model(tmp_path / "model")
    art = open_artifact(model, digests=True)
    path = model / "weights" / "part-0.bin"
    data = bytearray(path.read_bytes())
    data[0] ^= 1  # same size, other content
    path.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match=r"^weights/part-0.bin: .*DIGEST_INVALID"):
        push(art, f"{registry.host}/models/changed:v1")


def test_failed_pull_removes_the_directories_it_created(
    registry: Registry, model_dir: Path, tmp_path: Path
) -> None:
    from mlsec.artifact import open_artifact

    ref = f"{registry.host}/models/nested-dest:v1"
    push(model_dir, ref)
    sha = open_artifact(model_dir, digests=True).file("weights/part-1.bin").sha256
    blob = registry.blob_path(f"sha256:{sha}")
    original = blob.read_bytes()
    blob.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        with pytest.raises(RegistryError, match="digest mismatch"):
            pull(ref, tmp_path / "a" / "b" / "out")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    finally:
        blob.write_bytes(original)
    out = pull(ref, tmp_path / "a" / "b" / "out")
    assert out.dest.stat().st_mode & 0o777 == 0o777 & ~_umask()
    assert tree(out.dest) == tree(model_dir)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_manifest_corrupted_on_registry_disk_is_refused_when_pulled_by_tag(
    registry: Registry, model_dir: Path, tmp_path: Path
) -> None:
    ref = f"{registry.host}/models/manifest-corrupt:v1"
    res = push(model_dir, ref)
    blob = registry.blob_path(res.digest)
    original = blob.read_bytes()
    # Still valid JSON, still a valid manifest: only the digest can tell.
    blob.write_bytes(original.replace(b'"dev.mlsec.version":"', b'"dev.mlsec.version":"X'))
    try:
        with pytest.raises(RegistryError, match=f"says {res.digest}, the content is sha256:"):
            pull(ref, tmp_path / "out")
        with pytest.raises(RegistryError, match=f"digest mismatch: the registry says {res.digest}"):
            pull(f"{registry.host}/models/manifest-corrupt@{res.digest}", tmp_path / "out")
        assert not (tmp_path / "out").exists()
    finally:
        blob.write_bytes(original)


@pytest.mark.parametrize("monolithic_max", [1 << 30, 0])
def test_file_truncated_after_hashing_fails_naming_it(
    registry: Registry, tmp_path: Path, monolithic_max: int
) -> None:
    from mlsec.artifact import open_artifact

    model = make_model(tmp_path / "model")
    art = open_artifact(model, digests=True)
    with open(model / "weights" / "part-0.bin", "r+b") as f:
        f.truncate(1000)
    store = RegistryStore(registry.url, "models/truncated", monolithic_max=monolithic_max)
    with pytest.raises(RegistryError, match=r"^weights/part-0.bin: file shrank while pushing"):
        push(art, f"{registry.host}/models/truncated:v1", store=store)
    # The store is still usable afterwards (the spent connection was dropped).
    assert push(make_model(tmp_path / "other"), f"{registry.host}/models/truncated:v2", store=store)
    store.close()


def test_https_registry_with_certificate_verification(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TLS registry (not on a plain-HTTP loopback name, so HTTPS is the default)."""
    from tests.registry_server import make_tls_files, start_registry

    ca, cert, key = make_tls_files(tmp_path / "tls", "127.0.0.2")
    reg = start_registry(tmp_path / "reg", address="127.0.0.2", tls=(cert, key))
    try:
        ref = f"{reg.host}/models/tls:v1"
        other_ca = make_tls_files(tmp_path / "other", "127.0.0.2")[0]
        monkeypatch.setenv("SSL_CERT_FILE", str(other_ca))
        with pytest.raises(
            RegistryError, match=r"cannot reach registry: .*CERTIFICATE_VERIFY_FAILED"
        ):
            push(model_dir, ref)
        monkeypatch.setenv("SSL_CERT_FILE", str(ca))
        res = push(model_dir, ref)
        out = pull(ref, tmp_path / "out")
        assert tree(tmp_path / "out") == tree(model_dir) and out.digest == res.digest
    finally:
        reg.stop()
