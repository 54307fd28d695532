"""Property tests: hostile manifests, titles and references give a value or RegistryError."""

from __future__ import annotations

import contextlib
import json
import os.path

from hypothesis import given, settings
from hypothesis import strategies as st

from mlsec.errors import RegistryError
from mlsec.registry import Descriptor, Index, Manifest, parse_reference, safe_titles
from mlsec.registry.oci import TITLE

D = "sha256:" + "0" * 64
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
manifest_like = st.fixed_dictionaries(
    {"schemaVersion": st.sampled_from([2, 2, 1, "2"])},
    optional={
        "mediaType": st.sampled_from(["application/vnd.oci.image.manifest.v1+json", "x"]),
        "config": json_values,
        "layers": st.lists(json_values, max_size=4),
        "subject": json_values,
        "annotations": json_values,
        "artifactType": json_values,
        "manifests": st.lists(json_values, max_size=4),
    },
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(manifest_like, json_values))
def test_manifest_and_index_parse_never_crash(doc: object) -> None:
    data = json.dumps(doc).encode()
    for parse in (Manifest.parse, Index.parse):
        with contextlib.suppress(RegistryError):
            parse(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_manifest_parse_of_bytes_never_crashes(data: bytes) -> None:
    with contextlib.suppress(RegistryError):
        Manifest.parse(data)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.text(alphabet="ab./\\\x00 ", max_size=12), min_size=1, max_size=5))
def test_accepted_titles_stay_inside_the_destination(titles: list[str]) -> None:
    layers = tuple(Descriptor("x", D, 0, {TITLE: t}) for t in titles)
    try:
        paths = safe_titles(layers)
    except RegistryError:
        return
    root = "/dest"
    for p in paths:
        full = os.path.normpath(os.path.join(root, *p.parts))
        assert full.startswith(root + "/") and full != root
    assert len({str(p) for p in paths}) == len(paths)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="abc09.:/@-_ Aoci", max_size=40))
def test_parse_reference_gives_a_reference_or_registry_error(text: str) -> None:
    try:
        ref = parse_reference(text)
    except RegistryError:
        return
    assert ref.reference
    if ref.host is not None:
        assert "/" not in ref.host and ".." not in ref.repository.split("/")


def test_deeply_nested_json_is_a_clean_error() -> None:
    import pytest

    with pytest.raises(RegistryError, match="nested deeper than"):
        Manifest.parse(b"[" * 200_000 + b"]" * 200_000)
