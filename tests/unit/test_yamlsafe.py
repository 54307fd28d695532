"""The one YAML loader for untrusted documents: bounded depth, no aliases, no duplicate keys."""

from __future__ import annotations

import pytest

from mlsec.errors import PolicyError
from mlsec.yamlsafe import MAX_DEPTH, load_mapping


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "[" * 100_000 + "]" * 100_000,  # flow sequences
        "a: " + "{b: " * 100_000,  # flow mappings, never closed
        "- " * 50_000 + "x",  # block sequences, one per column
        "".join("  " * i + f"k{i}:\n" for i in range(MAX_DEPTH + 2)),  # block mappings
    ],
)
def test_deep_nesting_is_one_clean_error(text: str) -> None:
    with pytest.raises(PolicyError, match=rf"nested deeper than {MAX_DEPTH} levels"):
        load_mapping(text, "p.yaml", PolicyError, what="policy")


def test_duplicate_keys_name_the_key_and_line() -> None:
    text = "apiVersion: mlsec/policy/v1\nscan:\n  fail_on: high\n  fail_on: low\n"
    with pytest.raises(PolicyError, match=r"^p\.yaml:4: duplicate key 'fail_on' in the policy"):
        load_mapping(text, "p.yaml", PolicyError, what="policy")
    with pytest.raises(PolicyError, match=r"^README\.md:3: duplicate key 'license'"):
        load_mapping("license: mit\nlicense: gpl\n", "README.md", PolicyError, line_offset=1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &x [1]\nb: *x\n", "anchors and aliases"),
        ("base: {a: 1}\n<<: {b: 2}\n", "merge keys"),
        ("? [1, 2]\n: x\n", "not a plain value"),
    ],
)
def test_refused_constructs(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        load_mapping(text, "p.yaml", PolicyError)


def test_size_is_capped_and_ordinary_documents_load() -> None:
    with pytest.raises(PolicyError, match="larger than 100 bytes"):
        load_mapping("a: " + "x" * 200, "p.yaml", PolicyError, max_bytes=100)
    doc = load_mapping("a: [1, {b: c}]\nd: null\n", "p.yaml", PolicyError)
    assert doc == {"a": [1, {"b": "c"}], "d": None}
    assert load_mapping("", "p.yaml", PolicyError) == {}
