"""Statement and predicate parsing: hostile input is a one-line MlsecError, never anything else;
the subject rules (one model entry, consistent root digest, no file twice) hold."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlsec.artifact import open_artifact
from mlsec.attest import (
    SCAN_PREDICATE_TYPE,
    Statement,
    findings_digest,
    model_subjects,
    ruleset_digest,
    summarize,
)
from mlsec.attest.statement import compare_subjects, encode
from mlsec.errors import BundleError, MlsecError, VerificationError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


def _files(tmp_path: Path) -> Path:
    m = tmp_path / "m"
    (m / "d").mkdir(parents=True)
    (m / "a.bin").write_bytes(b"a" * 10)
    (m / "d" / "b.bin").write_bytes(b"b" * 10)
    return m


def _statement(tmp_path: Path) -> dict[str, Any]:
    art = open_artifact(_files(tmp_path), digests=True)
    root, *files = model_subjects(art)
    findings: list[dict[str, Any]] = []
    pred = {
        "threshold": "medium",
        "verdict": "pass",
        "summary": {"findings": dict.fromkeys(("critical", "high", "medium", "low", "info"), 0)},
        "findingsDigest": {"sha256": findings_digest(findings)},
        "findings": findings,
    }
    doc: dict[str, Any] = json.loads(
        encode(root.name, root.sha256, files, SCAN_PREDICATE_TYPE, pred)
    )
    return doc


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, (*prefix, i)))
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    node = doc
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return doc


def test_round_trip_and_subject_rules(tmp_path: Path) -> None:
    doc = _statement(tmp_path)
    parsed = Statement.parse(json.dumps(doc).encode())
    assert [f.name for f in parsed.files] == ["a.bin", "d/b.bin"]
    assert parsed.files[0].sha256 == hashlib.sha256(b"a" * 10).hexdigest()
    assert summarize(parsed.predicate_type, parsed.predicate)["verdict"] == "pass"
    assert compare_subjects(parsed, open_artifact(tmp_path / "m", digests=True)) == []
    # No subject annotated as the model, or two: malformed.
    two = copy.deepcopy(doc)
    del two["subject"][0]["annotations"]
    with pytest.raises(BundleError, match="exactly one"):
        Statement.parse(json.dumps(two).encode())
    two["subject"][0]["annotations"] = two["subject"][1]["annotations"] = {
        "mlsec.dev/subject": "model"
    }
    with pytest.raises(BundleError, match="exactly one"):
        Statement.parse(json.dumps(two).encode())
    # A duplicate key in signed JSON can be read two ways: exit 1, not a silent last-wins.
    raw = json.dumps(doc).replace('"_type"', '"predicateType": "x", "_type"', 1)
    with pytest.raises(VerificationError, match="duplicate key"):
        Statement.parse(raw.encode())
    # NFC and NFD spellings of one file name are one file.
    nfc = copy.deepcopy(doc)
    nfc["subject"][1]["name"] = "\u00e9.bin"
    nfc["subject"].append({"name": "e\u0301.bin", "digest": {"sha256": "0" * 64}})
    with pytest.raises(VerificationError, match="ambiguous"):
        Statement.parse(json.dumps(nfc).encode())


def test_ruleset_digest_tracks_the_extra_allowlist() -> None:
    assert ruleset_digest() == ruleset_digest()
    assert ruleset_digest(["a.b"]) != ruleset_digest()
    assert ruleset_digest(["a.b", "c.d"]) == ruleset_digest(["c.d", "a.b"])


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _statement(tmp_path_factory.mktemp("stmt"))


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_mutated_statements_fail_cleanly(base: dict[str, Any], data: st.DataObject) -> None:
    doc = copy.deepcopy(base)
    path = data.draw(st.sampled_from(_paths(doc)))
    doc = _set(doc, path, data.draw(json_values))
    with contextlib.suppress(MlsecError):
        parsed = Statement.parse(json.dumps(doc).encode())
        summarize(parsed.predicate_type, parsed.predicate)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_random_predicates_fail_cleanly(value: Any) -> None:
    for ptype in (
        SCAN_PREDICATE_TYPE,
        "https://cyclonedx.org/bom",
        "https://slsa.dev/provenance/v1",
    ):
        with contextlib.suppress(MlsecError):
            summarize(ptype, value)
