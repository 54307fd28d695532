"""Fixtures for the registry tests: real ``docker-registry`` servers (open and with basic auth),
generated models, and the push/pull commands registered on the CLI app.

The integration tests import these fixtures (``tests/integration/test_cli_registry.py``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.registry_server import Registry, TokenServer, start_registry

USER = "alice"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A docker-registry on 127.0.0.1 with filesystem storage, no auth."""
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A docker-registry requiring basic auth (htpasswd -B) for USER / PASSWORD."""
    reg = start_registry(tmp_path_factory.mktemp("auth-registry"), username=USER, password=PASSWORD)
    yield reg
    reg.stop()


@pytest.fixture
def registry_cli(cli):  # type: ignore[no-untyped-def]
    """The ``cli`` runner with ``push``/``pull`` registered (app.py wires them after merge)."""
    from mlsec.cli import app as app_mod
    from mlsec.cli import registry as registry_cli_mod

    if "push" not in [c.name for c in app_mod.app.registered_commands]:
        registry_cli_mod.register(app_mod.app)
    return cli


@pytest.fixture
def no_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty DOCKER_CONFIG, so a developer's ~/.docker/config.json never leaks into a test."""
    d = tmp_path / "docker-config"
    d.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(d))
    monkeypatch.delenv("MLSEC_REGISTRY_PASSWORD", raising=False)
    monkeypatch.setenv("MLSEC_HOME", str(tmp_path / "mlsec-home"))
    return d


def make_model(root: Path, *, seed: bytes | None = None) -> Path:
    """A small model directory with nested files, an empty file and two identical files.

    Content is random per call so that tests sharing a registry never share blobs by accident.
    """
    seed = seed or os.urandom(16)
    (root / "weights").mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"model_type": "tiny", "seed": seed.hex()}) + "\n")
    (root / "weights" / "part-0.bin").write_bytes(seed + os.urandom(300_000))
    (root / "weights" / "part-1.bin").write_bytes(seed + os.urandom(5_000))
    (root / "weights" / "copy-of-1.bin").write_bytes((root / "weights" / "part-1.bin").read_bytes())
    (root / "empty.txt").write_bytes(b"")
    (root / ".hidden").write_text("dotfile " + seed.hex())
    return root


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by POSIX relative path, with its bytes."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return make_model(tmp_path / "model")


@pytest.fixture(scope="session")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Registry, TokenServer]]:
    """A docker-registry with token (Bearer) auth, and its token service (USER / PASSWORD)."""
    work = tmp_path_factory.mktemp("token-registry")
    tokens = TokenServer(work, USER, PASSWORD)
    reg = start_registry(work, token_auth=tokens.registry_config())
    yield reg, tokens
    reg.stop()
    tokens.stop()
