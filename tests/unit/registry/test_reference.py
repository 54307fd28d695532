from __future__ import annotations

from pathlib import Path

import pytest

from mlsec.errors import RegistryError
from mlsec.registry import RefKind, default_store_root, parse_reference

D = "sha256:" + "ab" * 32


def test_registry_reference_with_port_tag_and_nested_repo() -> None:
    r = parse_reference("localhost:5000/org/models/bert:v1.2")
    assert (r.kind, r.host, r.repository, r.tag, r.digest) == (
        RefKind.REGISTRY,
        "localhost:5000",
        "org/models/bert",
        "v1.2",
        None,
    )
    assert r.is_loopback and r.reference == "v1.2"
    assert str(r) == "localhost:5000/org/models/bert:v1.2"


def test_registry_reference_by_digest_and_default_tag() -> None:
    r = parse_reference(f"ghcr.io/org/model@{D}")
    assert r.digest == D and r.reference == D and not r.is_loopback
    assert parse_reference("ghcr.io/org/model").tag == "latest"
    assert parse_reference("127.0.0.1:5000/m").is_loopback
    assert parse_reference("[::1]:5000/m").is_loopback


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "ghcr.io/Org/Model:v1",
        "ghcr.io/org/model:bad/tag",
        f"ghcr.io/m@sha256:{'z' * 64}",
        "ghcr.io/m@md5:abc",
        "has space:v1",
        "ghcr.io/../x:v1",
        "UPPER:v1",
    ],
)
def test_invalid_references_are_refused(bad: str) -> None:
    with pytest.raises(RegistryError):
        parse_reference(bad)


def test_oci_layout_reference() -> None:
    r = parse_reference("oci:/srv/store/models:v2")
    assert r.kind is RefKind.LAYOUT and r.layout == Path("/srv/store/models") and r.tag == "v2"
    r = parse_reference("oci:relative/dir")
    assert r.layout == Path("relative/dir") and r.tag == "latest"
    r = parse_reference(f"oci:/a:b/c@{D}")  # a colon before the last slash is part of the path
    assert r.layout == Path("/a:b/c") and r.digest == D


def test_bare_name_means_the_local_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLSEC_HOME", str(tmp_path))
    r = parse_reference("team/bert:v1")
    assert r.kind is RefKind.LAYOUT and r.layout == tmp_path / "oci" / "team" / "bert"
    assert r.tag == "v1"
    monkeypatch.delenv("MLSEC_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_store_root() == tmp_path / "xdg" / "mlsec" / "oci"
