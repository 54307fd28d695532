"""Model-card extraction from README.md front matter, its Markdown body and config.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlsec.errors import ExitCode, SbomError
from mlsec.sbom.card import MAX_CARD_BYTES, Metric, ModelCard, read_model_card

CARD = """---
license: mit
language: [en, fr]
library_name: transformers
pipeline_tag: token-classification
datasets:
  - conll2003
  - org/private-ner
base_model: bert-base-cased
tags: [ner, bert]
model-index:
- name: bert-ner
  results:
  - task: {type: token-classification, name: NER}
    dataset: {type: conll2003, name: CoNLL-2003, split: test}
    metrics:
    - {type: f1, value: 0.912}
    - {type: accuracy, value: 0.98}
---
# BERT NER

A named-entity recogniser
fine-tuned on news text.

```python
# Intended uses (inside code: not a heading)
```

## Intended uses & limitations
- Tagging persons, places and organisations in English news.
- Not for medical text.

## Bias, Risks, and Limitations

The model inherits the biases of its training news corpus.

## Training procedure
Adam, 3 epochs.
"""


def _model(tmp_path: Path, card: str | None = CARD, config: object = None) -> Path:
    root = tmp_path / "m"
    root.mkdir()
    if card is not None:
        (root / "README.md").write_text(card)
    if config is not None:
        (root / "config.json").write_text(json.dumps(config))
    return root


def test_front_matter_body_and_config(tmp_path):
    root = _model(
        tmp_path,
        config={
            "architectures": ["BertForTokenClassification"],
            "model_type": "bert",
            "transformers_version": "4.38.2",
        },
    )
    card = read_model_card(root)
    assert card.name == "bert-ner"  # model-index name wins over the heading
    assert card.description == "A named-entity recogniser fine-tuned on news text."
    assert card.licenses == ("mit",)
    assert card.languages == ("en", "fr")
    assert card.library == "transformers"
    assert card.task == "token-classification"
    assert card.datasets == ("conll2003", "org/private-ner")
    assert card.base_models == ("bert-base-cased",)
    assert card.tags == ("ner", "bert")
    assert card.metrics == (
        Metric("f1", "0.912", "CoNLL-2003", "token-classification"),
        Metric("accuracy", "0.98", "CoNLL-2003", "token-classification"),
    )
    assert card.use_cases == (
        "Tagging persons, places and organisations in English news.",
        "Not for medical text.",
    )
    assert "The model inherits the biases of its training news corpus." in card.limitations
    assert card.architecture == "BertForTokenClassification"
    assert card.architecture_family == "bert"
    assert card.transformers_version == "4.38.2"
    assert card.sources == ("README.md", "config.json")
    assert card.to_dict()["metrics"][0] == {
        "type": "f1",
        "value": "0.912",
        "dataset": "CoNLL-2003",
        "task": "token-classification",
    }


def test_no_card_no_config_and_a_single_file(tmp_path):
    root = _model(tmp_path, card=None)
    assert read_model_card(root) == ModelCard()
    (root / "model.bin").write_bytes(b"x")
    assert read_model_card(root / "model.bin") == ModelCard()


def test_card_without_front_matter_uses_heading_and_first_paragraph(tmp_path):
    root = _model(tmp_path, card="# my-model\n\nDoes things.\n\nMore.\n")
    card = read_model_card(root)
    assert (card.name, card.description, card.licenses) == ("my-model", "Does things.", ())


@pytest.mark.parametrize(
    ("front", "message"),
    [
        ("license: [mit\n", "README.md:2: malformed YAML front matter"),
        ("a: &x [1]\nb: *x\n", "README.md:2: YAML anchors and aliases are not accepted"),
        ("- just\n- a list\n", "README.md: the YAML front matter is not a mapping"),
        ("tag: !!python/object/apply:os.system ['true']\n", "README.md:2: malformed YAML"),
    ],
)
def test_malformed_front_matter_is_a_one_line_error(tmp_path, front, message):
    root = _model(tmp_path, card=f"---\n{front}---\n# x\n")
    with pytest.raises(SbomError) as exc:
        read_model_card(root)
    assert str(exc.value).startswith(message)
    assert "\n" not in str(exc.value)
    assert exc.value.exit_code is ExitCode.ERROR


def test_malformed_config_json_is_an_error(tmp_path):
    root = _model(tmp_path, card=None)
    (root / "config.json").write_text("{not json")
    with pytest.raises(SbomError, match=r"^config.json:1: malformed JSON"):
        read_model_card(root)


def test_a_huge_card_is_read_up_to_the_limit(tmp_path):
    root = _model(tmp_path, card="---\nlicense: mit\n---\n# big\n" + "x" * (2 * MAX_CARD_BYTES))
    assert read_model_card(root).licenses == ("mit",)


def test_a_card_symlinked_from_outside_is_not_read(tmp_path):
    outside = tmp_path / "secret.md"
    outside.write_text("---\nlicense: leaked\n---\n")
    root = _model(tmp_path, card=None)
    (root / "README.md").symlink_to(outside)
    assert read_model_card(root).licenses == ()
