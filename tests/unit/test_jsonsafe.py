"""The one JSON loader for untrusted documents: bounded depth and size, no duplicate keys."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlsec.errors import MlsecError, PolicyError
from mlsec.jsonsafe import MAX_DEPTH, check_depth, loads


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 2_000, 200_000])
def test_deep_nesting_is_one_clean_error_at_any_depth(depth: int) -> None:
    for doc in ('{"a":' * depth + "1" + "}" * depth, "[" * depth + "]" * depth):
        with pytest.raises(PolicyError, match=rf"^c\.json:1: JSON nested deeper than {MAX_DEPTH}"):
            loads(doc, "c.json", PolicyError)


def test_nesting_at_the_limit_is_accepted() -> None:
    doc = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert loads(doc, "c.json", PolicyError) == json.loads(doc)


def test_brackets_inside_strings_do_not_count() -> None:
    doc = json.dumps({"s": "[" * 10_000, "t": 'a\\"{{{'})
    assert loads(doc, "c.json", PolicyError)["s"] == "[" * 10_000
    assert check_depth(doc.encode()) is None


def test_a_duplicate_key_names_the_key_and_its_line() -> None:
    doc = '{\n  "fail_on": "high",\n  "scan": {\n    "x": 1,\n    "x": 2\n  }\n}\n'
    with pytest.raises(PolicyError, match=r"^p\.json:5: duplicate key 'x'"):
        loads(doc, "p.json", PolicyError)
    # Two spellings of one key are one key.
    with pytest.raises(PolicyError, match="duplicate key 'a'"):
        loads('{"a": 1, "\\u0061": 2}', "p.json", PolicyError)
    # The same key in two different objects is fine.
    assert loads('[{"a": 1}, {"a": 2}]', "p.json", PolicyError) == [{"a": 1}, {"a": 2}]


def test_size_nan_and_encoding() -> None:
    with pytest.raises(PolicyError, match="larger than 10 bytes"):
        loads(b"[" + b"1," * 10 + b"1]", "x", PolicyError, max_bytes=10)
    with pytest.raises(PolicyError, match="NaN is not JSON"):
        loads('{"a": NaN}', "x", PolicyError)
    assert loads('{"a": NaN}', "x", PolicyError, allow_nan=True)["a"] != 0
    with pytest.raises(PolicyError, match="not UTF-8"):
        loads(b'{"a": "\xff"}', "x", PolicyError)
    with pytest.raises(PolicyError, match=r"^x:2: malformed JSON"):
        loads('{"a": 1,\n}', "x", PolicyError)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(alphabet='{}[]",:\\ 1an', max_size=300))
def test_any_input_parses_or_is_one_mlsec_error(data: bytes | str) -> None:
    try:
        loads(data, "fuzz", PolicyError)
    except MlsecError as exc:
        assert "\n" not in exc.message
