# ruff: noqa: F811 - the registry fixtures are imported from tests/unit/registry/conftest.py
"""Interoperability with the peer oras-py (the ORAS Python SDK, a test dependency), both ways,
through a real docker-registry: what mlsec pushes, oras pulls; what oras pushes, mlsec pulls
(and verifies)."""

from __future__ import annotations

import os
from pathlib import Path

import oras.client

from tests.registry_server import Registry
from tests.unit.registry.conftest import registry, registry_cli, tree  # noqa: F401 - fixtures


def _files() -> dict[str, bytes]:
    return {"weights.safetensors": os.urandom(200_000), "config.json": b'{"a": 1}'}


def test_mlsec_push_oras_pull(registry_cli, registry: Registry, tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    for name, data in _files().items():
        (model / name).write_bytes(data)
    ref = f"{registry.host}/interop/from-mlsec:v1"
    assert registry_cli("push", model, ref).exit_code == 0
    client = oras.client.OrasClient(hostname=registry.host, insecure=True)
    out = tmp_path / "oras-out"
    pulled = client.pull(target=ref, outdir=str(out))
    assert sorted(Path(p).name for p in pulled) == ["config.json", "weights.safetensors"]
    assert tree(out) == tree(model)


def test_oras_push_mlsec_pull(
    registry_cli, registry: Registry, tmp_path: Path, monkeypatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    files = _files()
    for name, data in files.items():
        (src / name).write_bytes(data)
    monkeypatch.chdir(src)  # oras titles files by the path it was given
    ref = f"{registry.host}/interop/from-oras:v1"
    client = oras.client.OrasClient(hostname=registry.host, insecure=True)
    client.push(target=ref, files=sorted(files), quiet=True)
    r = registry_cli("pull", ref, tmp_path / "out")
    assert r.exit_code == 0, r.stderr
    assert tree(tmp_path / "out") == tree(src)
