from __future__ import annotations

import json

import pytest

from mlsec.errors import RegistryError
from mlsec.registry import Descriptor, Index, Manifest, safe_titles
from mlsec.registry.oci import EMPTY_CONFIG, TITLE

D = "sha256:" + "ab" * 32


def layer(title: str | None, digest: str = D) -> Descriptor:
    return Descriptor("application/octet-stream", digest, 1, {TITLE: title} if title else {})


def test_empty_config_is_the_two_byte_json_object() -> None:
    assert EMPTY_CONFIG.digest == (
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    )
    assert EMPTY_CONFIG.size == 2


def test_manifest_round_trip() -> None:
    m = Manifest(EMPTY_CONFIG, (layer("a/b.bin"),), "application/x", layer(None), {"k": "v"})
    again = Manifest.parse(m.to_bytes())
    assert again == m
    obj = json.loads(m.to_bytes())
    assert obj["schemaVersion"] == 2 and obj["artifactType"] == "application/x"
    assert obj["subject"]["digest"] == D


@pytest.mark.parametrize(
    "mutate",
    [
        lambda o: o.update(schemaVersion=1),
        lambda o: o["layers"][0].update(digest="sha512:" + "a" * 128),
        lambda o: o["layers"][0].update(digest="sha256:../../etc/passwd"),
        lambda o: o["layers"][0].update(size=-1),
        lambda o: o["layers"][0].update(size="12"),
        lambda o: o.update(layers={}),
        lambda o: o.update(mediaType="application/vnd.oci.image.index.v1+json"),
        lambda o: o["layers"][0].update(annotations={TITLE: 3}),
        lambda o: o.pop("config"),
    ],
)
def test_malformed_manifests_are_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    obj = json.loads(Manifest(EMPTY_CONFIG, (layer("x"),)).to_bytes())
    mutate(obj)
    with pytest.raises(RegistryError):
        Manifest.parse(json.dumps(obj).encode())


def test_not_json_and_oversized_are_refused() -> None:
    with pytest.raises(RegistryError, match="malformed JSON"):
        Manifest.parse(b"{nope")
    with pytest.raises(RegistryError, match="larger than"):
        Index.parse(b" " * (4 * 1024 * 1024 + 1))


def test_safe_titles_accepts_nested_relative_paths() -> None:
    got = safe_titles((layer("config.json"), layer("w/a.bin"), layer("w/b/c.bin"), layer(".h")))
    assert [str(p) for p in got] == ["config.json", "w/a.bin", "w/b/c.bin", ".h"]


@pytest.mark.parametrize(
    ("titles", "why"),
    [
        (["../evil"], "unsafe"),
        (["a/../../evil"], "unsafe"),
        (["/etc/passwd"], "unsafe"),
        (["a//b"], "unsafe"),
        (["./a"], "unsafe"),
        (["a\\..\\b"], "unsafe"),
        (["a\x00b"], "unsafe"),
        ([None], "no org.opencontainers.image.title"),
        (["a", "a"], "duplicate"),
        (["a", "a/b"], "both a file and a directory"),
        (["x/y/z", "x/y"], "both a file and a directory"),
    ],
)
def test_safe_titles_refuses(titles: list[str | None], why: str) -> None:
    with pytest.raises(RegistryError, match=why):
        safe_titles(tuple(layer(t) for t in titles))
