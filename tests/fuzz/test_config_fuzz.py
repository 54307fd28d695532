"""Fuzzing the parsers of hand-written and hostile documents: model cards, policies, Hydra
configs. Whatever the bytes, the only outcomes are a result or the module's own one-line error."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlsec.errors import PolicyError, SbomError
from mlsec.policy.evaluate import evaluate
from mlsec.policy.model import load_policy
from mlsec.sbom.card import read_model_card
from tests.unit.policy.test_evaluate import ev

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

yaml_ish = st.text(
    alphabet=st.sampled_from(list("abc_-:[]{}&*!|>'\"#\n 0123456789.,")), max_size=300
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=30,
)


@FUZZ
@given(front=yaml_ish, body=st.text(max_size=300), config=json_values)
def test_model_card_parser(front: str, body: str, config: object) -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "README.md").write_text(f"---\n{front}\n---\n{body}")
        (root / "config.json").write_text(json.dumps(config))
        try:
            card = read_model_card(root)
        except SbomError as exc:
            assert "\n" not in str(exc)
            return
        json.dumps(card.to_dict())  # every field is plain data


@FUZZ
@given(doc=json_values)
def test_policy_parser_and_evaluation(doc: object) -> None:
    if isinstance(doc, dict):
        doc = {"apiVersion": "mlsec/policy/v1", **doc}
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "p.json"
        p.write_text(json.dumps(doc))
        try:
            policy = load_policy(p)
        except PolicyError as exc:
            assert "\n" not in str(exc)
            return
        decision = evaluate(policy, ev())
        assert decision.allowed == all(c.passed for c in decision.checks)


@FUZZ
@given(text=yaml_ish)
def test_policy_yaml_parser(text: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "p.yaml"
        p.write_text(text)
        try:
            load_policy(p)
        except PolicyError as exc:
            assert "\n" not in str(exc)
